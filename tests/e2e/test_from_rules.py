"""Who a message says it is from (issue 17, finding 1): an authenticated account cannot make a
mail reader show another account as the sender. Dialogues against a real ``hygie serve``: Jean
submits over STARTTLS, Paul reads over IMAP what every mail reader would show him (ENVELOPE,
``SEARCH FROM``, the header fields as stored).

The header section is read once, by the reader IMAP uses, so ``From : x`` and ``From<TAB>: x``
(RFC 5322 §4.5.3 obsolete syntax) are From fields for the check as for the reader.
"""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from bench.harness import ServerProcess
from tests.imap_server.dialogue import Script, fetch_items, quoted
from tests.support.dialogue import SmtpDialogue, SmtpReply
from tests.support.servers import DATABASES, start_server, stop_server
from tests.support.tools import ensure_debian_tool

JEAN = "jean.dupont@hygie.test"  # the sender
CLAIRE = "claire.martin@hygie.test"  # the colleague nobody may pose as
PAUL = "paul.durand@hygie.test"  # the recipient who reads
PASSWORD = "from-rules-17-correct-horse"
OWN_ENVELOPE = [[None, None, b"jean.dupont", b"hygie.test"]]


@pytest.fixture(scope="module", params=DATABASES)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    srv = start_server(request, request.param, {a: PASSWORD for a in (JEAN, CLAIRE, PAUL)})
    yield srv
    stop_server(srv)


@pytest.fixture
def tc(server: ServerProcess) -> Iterator[SmtpDialogue]:
    """Jean's submission session: STARTTLS on 2587, AUTH PLAIN."""
    dialogue = SmtpDialogue.connect(server.smtp_port)
    dialogue.greet_and_tls(server.ssl_context())
    assert dialogue.auth_plain(JEAN, PASSWORD).code == 235
    yield dialogue
    dialogue.close()


def message(subject: str, *fields: str | bytes) -> bytes:
    """A message with exactly the header ``fields`` given (no From unless one is given)."""
    lines = [f.encode() if isinstance(f, str) else f for f in fields]
    lines += [f"To: <{PAUL}>".encode(), f"Subject: {subject}".encode()]
    return b"\r\n".join(lines) + b"\r\n\r\nBonjour Paul.\r\n"


def submit(tc: SmtpDialogue, data: bytes) -> SmtpReply:
    tc.C(f"MAIL FROM:<{JEAN}>")
    tc.S("250 2.1.0")
    tc.C(f"RCPT TO:<{PAUL}>")
    tc.S("250 2.1.5")
    tc.C("DATA")
    tc.S("354")
    tc.send_raw(data + b".\r\n")
    return tc.reply()


def unique(label: str) -> str:
    return f"{label}-{time.monotonic_ns()}"


def refused(tc: SmtpDialogue, field: str, subject: str, *fields: str | bytes) -> None:
    reply = submit(tc, message(subject, *fields))
    assert reply.code == 550 and reply.lines[0].startswith(f"5.7.1 {field}:"), (
        f"{fields!r}: expected 550 5.7.1 {field}:, got {reply}"
    )


def accepted(tc: SmtpDialogue, subject: str, *fields: str | bytes) -> None:
    reply = submit(tc, message(subject, *fields))
    assert reply.code == 250, f"{fields!r}: {reply}"


class Reader:
    """Paul's IMAP session: what his mail reader shows."""

    def __init__(self, server: ServerProcess) -> None:
        self.tc = Script.connect(server).open(PAUL, PASSWORD)
        self.tc.C("s1 SELECT INBOX")
        self.tc.S("s1 OK …")
        self.n = 0

    def _tag(self) -> str:
        self.n += 1
        return f"r{self.n}"

    def search(self, *criteria: str) -> list[int]:
        tag = self._tag()
        self.tc.C(f"{tag} NOOP")  # new mail is announced (EXISTS) before it can be searched
        self.tc.S(f"{tag} OK …")
        tag = self._tag()
        self.tc.C(f"{tag} UID SEARCH {' '.join(criteria)}")
        self.tc.S("* SEARCH{uids:.*}", f"{tag} OK …")
        return [int(u) for u in self.tc.vars.pop("uids").split()]

    def uid(self, subject: str) -> int | None:
        found = self.search("SUBJECT", quoted(subject))
        assert len(found) <= 1
        return found[0] if found else None

    def envelope(self, uid: int) -> list[object]:
        tag = self._tag()
        self.tc.C(f"{tag} UID FETCH {uid} (ENVELOPE)")
        reply = self.tc.S("* {} FETCH {items:.*}", f"{tag} OK …")
        line = next(x for x in reply.lines if x.startswith("* ") and "FETCH" in x)
        self.tc.vars.pop("items")
        envelope = fetch_items(line)["ENVELOPE"]
        assert isinstance(envelope, list)
        return envelope

    def from_fields(self, uid: int) -> bytes:
        """``BODY[HEADER.FIELDS (FROM)]``: the From fields as stored (RFC 9051 §6.4.5)."""
        tag = self._tag()
        self.tc.C(f"{tag} UID FETCH {uid} (BODY.PEEK[HEADER.FIELDS (FROM)])")
        reply = self.tc.S("* {} FETCH {items:.*}", f"{tag} OK …")
        self.tc.vars.pop("items")
        assert len(reply.literals) == 1, reply.lines
        return reply.literals[0]

    def close(self) -> None:
        self.tc.C("z LOGOUT")
        self.tc.close()


@pytest.fixture
def paul(server: ServerProcess) -> Iterator[Reader]:
    reader = Reader(server)
    yield reader
    reader.close()


# -- From with white space before the colon (RFC 5322 §4.5.3) ----------------------------------

OBSOLETE_NAMES: Sequence[str] = ("From : ", "From\t: ", "FROM:", "from  :\t", "From :")


@pytest.mark.parametrize("name", OBSOLETE_NAMES, ids=["space", "tab", "upper", "lower", "bare"])
def test_from_with_space_before_the_colon_is_a_from_field(
    tc: SmtpDialogue, paul: Reader, name: str
) -> None:
    # C: From : claire.martin@hygie.test      S: 550 5.7.1 From: address not one …
    forged = unique("obs-forged")
    refused(tc, "From", forged, f"{name}{CLAIRE}")
    # C: From : jean.dupont@hygie.test        S: 250 — and Paul sees Jean, as was checked.
    own = unique("obs-own")
    accepted(tc, own, f"{name}{JEAN}")
    assert paul.uid(forged) is None
    uid = paul.uid(own)
    assert uid is not None
    envelope = paul.envelope(uid)
    assert envelope[2] == OWN_ENVELOPE  # from
    assert envelope[3] == OWN_ENVELOPE  # sender (RFC 9051 §7.5.2: From when absent)
    assert uid in paul.search("FROM", quoted(JEAN))
    assert uid not in paul.search("FROM", quoted("claire"))


def test_a_header_that_starts_folded_hides_no_from(tc: SmtpDialogue, paul: Reader) -> None:
    """A first line starting with white space continues nothing: it is no From field (once
    stored it would continue the server's ``Received:``). So the message has no From, one is
    added on top, the line continues it, and the From that results names Claire: refused.
    (The old check read no From here, and IMAP showed an empty sender.)"""
    subject = unique("folded-first")
    reply = submit(tc, f" From: <{CLAIRE}>\r\nTo: <{PAUL}>\r\nSubject: {subject}\r\n\r\nx\r\n"
                   .encode())  # fmt: skip
    assert (reply.code, reply.lines[0][:11]) == (550, "5.7.1 From:"), reply
    assert paul.uid(subject) is None


def test_a_second_from_field_is_refused(tc: SmtpDialogue, paul: Reader) -> None:
    subject = unique("two-from")
    refused(tc, "More than one From", subject, f"From: <{JEAN}>", f"From : <{CLAIRE}>")
    reply = submit(tc, message(subject, f"From: <{JEAN}>", f"From: <{JEAN}>"))
    assert (reply.code, reply.lines[0][:5]) == (550, "5.7.1"), reply
    assert "More than one From" in reply.text
    assert paul.uid(subject) is None


def test_an_empty_from_field_is_refused(tc: SmtpDialogue) -> None:
    refused(tc, "From", unique("empty-from"), "From: ")
    refused(tc, "From", unique("group-from"), "From: Cabinet:;")
    refused(tc, "From", unique("no-domain"), "From: jean.dupont")


# -- no From at all: the account's address is added (RFC 6409 §8.1) ------------------------------


def test_a_message_without_from_shows_the_account_as_sender(tc: SmtpDialogue, paul: Reader) -> None:
    subject = unique("no-from")
    accepted(tc, subject)
    uid = paul.uid(subject)
    assert uid is not None
    assert paul.envelope(uid)[2] == OWN_ENVELOPE
    assert paul.from_fields(uid) == f"From: {JEAN}\r\n\r\n".encode()
    assert uid in paul.search("FROM", quoted(JEAN))


def test_the_readme_tour_curl_message_without_from(server: ServerProcess, tmp_path: Path) -> None:
    """The README sends ``Subject: …\\r\\n\\r\\nBonjour.`` with curl: it keeps working, and the
    recipient sees who sent it."""
    curl = ensure_debian_tool("curl")
    subject = unique("curl-tour")
    eml = tmp_path / "msg.eml"
    eml.write_bytes(f"Subject: {subject}\r\n\r\nBonjour.\r\n".encode())
    proc = subprocess.run(
        [curl, "--silent", "--show-error", "--ssl-reqd", f"smtp://127.0.0.1:{server.smtp_port}",
         "--cacert", str(server.ca_file), "--user", f"{JEAN}:{PASSWORD}",
         "--mail-from", JEAN, "--mail-rcpt", PAUL, "--upload-file", str(eml)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    reader = Reader(server)
    try:
        uid = reader.uid(subject)
        assert uid is not None
        assert reader.envelope(uid)[2] == OWN_ENVELOPE
    finally:
        reader.close()


# -- Sender, Resent-From, Resent-Sender: addresses the account may use ---------------------------


@pytest.mark.parametrize("field", ["Sender", "Resent-From", "Resent-Sender"])
def test_other_sender_fields_must_be_the_accounts(
    tc: SmtpDialogue, paul: Reader, field: str
) -> None:
    subject = unique(field)
    refused(tc, field, subject, f"From: <{JEAN}>", f"{field}: <{CLAIRE}>")
    refused(tc, field, subject, f"From: <{JEAN}>", f"{field} : Claire <{CLAIRE}>")
    assert paul.uid(subject) is None
    accepted(tc, subject, f"From: <{JEAN}>", f"{field}: Jean Dupont <{JEAN}>")
    assert paul.uid(subject) is not None


def test_sender_shown_by_the_reader_is_the_accounts(tc: SmtpDialogue, paul: Reader) -> None:
    subject = unique("sender-shown")
    accepted(tc, subject, f"From: Dr Jean Dupont <{JEAN}>", f"Sender:\t<{JEAN}>")
    uid = paul.uid(subject)
    assert uid is not None
    envelope = paul.envelope(uid)
    assert envelope[2] == [[b"Dr Jean Dupont", None, b"jean.dupont", b"hygie.test"]]
    assert envelope[3] == OWN_ENVELOPE


# -- Reply-To names anyone; no display name poses as another address -----------------------------


def test_reply_to_may_name_any_address(tc: SmtpDialogue, paul: Reader) -> None:
    subject = unique("reply-to")
    accepted(tc, subject, f"From: <{JEAN}>", f"Reply-To: Secrétariat <{CLAIRE}>")
    uid = paul.uid(subject)
    assert uid is not None
    assert paul.envelope(uid)[4] == [[b"Secr\xc3\xa9tariat", None, b"claire.martin", b"hygie.test"]]


def _q(text: str) -> str:
    """RFC 2047 Q encoding of ``text`` with every character encoded."""
    return "=?utf-8?q?" + "".join(f"={b:02X}" for b in text.encode()) + "?="


def _b(text: str, charset: str = "utf-8") -> str:
    return f"=?{charset}?b?" + base64.b64encode(text.encode(charset)).decode() + "?="


POSING_NAMES: Sequence[str] = (
    f'"{CLAIRE}"',  # quoted
    CLAIRE,  # bare (the phrase reads "claire.martin @ hygie.test")
    '" Claire.Martin@HYGIE.test "',  # case, surrounding spaces
    f'"<{CLAIRE}>"',  # angle brackets inside the name
    f'"Claire Martin <{CLAIRE}>"',
    _q(CLAIRE),  # RFC 2047, Q
    _b(CLAIRE),  # RFC 2047, B
    _b(CLAIRE, "utf-16"),  # a charset where "@" is not the byte 0x40
    _q("claire.martin＠hygie.test"),  # fullwidth commercial at
    f'"{_q(CLAIRE)}"',  # an encoded word inside quotes (readers decode it all the same)
    '"claire.martin\\@hygie.test"',  # a quoted-pair
)


@pytest.mark.parametrize("field", ["From", "Sender", "Reply-To", "Resent-From"])
def test_a_display_name_that_is_another_address_is_refused(
    tc: SmtpDialogue, paul: Reader, field: str
) -> None:
    subject = unique(f"posing-{field}")
    extra = [] if field == "From" else [f"From: <{JEAN}>"]
    for name in POSING_NAMES:
        refused(tc, field, subject, *extra, f"{field}: {name} <{JEAN}>")
    # A comment is shown as a name by some readers: "jean.dupont@hygie.test (claire…)".
    refused(tc, field, subject, *extra, f"{field}: {JEAN} ({CLAIRE})")
    assert paul.uid(subject) is None
    # The mailbox's own address as its display name is what it is.
    accepted(tc, subject, *extra, f'{field}: "{JEAN.upper()}" <{JEAN}>')
    assert paul.uid(subject) is not None


def test_reply_to_cannot_pose_either(tc: SmtpDialogue) -> None:
    subject = unique("reply-to-posing")
    refused(tc, "Reply-To", subject, f"From: <{JEAN}>", f'Reply-To: "{JEAN}" <{CLAIRE}>')
    refused(tc, "Reply-To", subject, f"From: <{JEAN}>", f'Reply-To : "{CLAIRE}" <{PAUL}>')


def test_what_paul_sees_is_what_was_checked(tc: SmtpDialogue, paul: Reader) -> None:
    """A folded, obsolete-syntax From with an encoded display name: ENVELOPE and SEARCH FROM
    show exactly the checked address and name."""
    subject = unique("folded")
    name = _q("Dr Jean Dupont")
    accepted(tc, subject, f"From\t:\r\n {name}\r\n\t<{JEAN}>".encode())
    uid = paul.uid(subject)
    assert uid is not None
    envelope = paul.envelope(uid)
    assert envelope[2] == [[name.encode(), None, b"jean.dupont", b"hygie.test"]]
    assert uid in paul.search("FROM", quoted("Dr Jean Dupont"))

"""New keywords are announced (RFC 9051 §7.3.5, RFC 3501 §7.2.6): when a STORE, APPEND, COPY
or MOVE brings a keyword the mailbox's FLAGS response has not listed, the server sends an
untagged FLAGS, and PERMANENTFLAGS (RFC 9051 §7.1), before any FETCH that shows it."""

from __future__ import annotations

from tests.imap_server.dialogue import Script
from tests.imap_server.messages import text_message

SYSTEM = "\\Answered \\Deleted \\Draft \\Flagged \\Seen"


def _select(tc: Script, mailbox: str = "INBOX", tag: str = "s1") -> None:
    tc.C(f"{tag} SELECT {mailbox}")
    tc.S(f"* FLAGS ({SYSTEM})", f"{tag} OK [READ-WRITE] …")


def test_store_of_a_new_keyword_announces_it_first(tc: Script) -> None:
    tc.append("INBOX", text_message("One"))
    _select(tc)
    tc.C("a1 STORE 1 +FLAGS ($hello)")
    tc.S(
        f"* FLAGS ($hello {SYSTEM})",
        "* OK [PERMANENTFLAGS (…$hello…\\*)] …",
        "* 1 FETCH (FLAGS ($hello))",
        "a1 OK …",
        ordered=True,
    )
    # Told once: the next STORE of it announces nothing.
    tc.C("a2 STORE 1 +FLAGS (\\Seen $Hello)")
    tc.S("* 1 FETCH (FLAGS ($hello \\Seen))", "a2 OK …", absent=["* FLAGS …"])


def test_a_keyword_named_nil_is_announced_too(tc: Script) -> None:
    tc.append("INBOX", text_message("One"))
    _select(tc)
    tc.C("a1 STORE 1 +FLAGS (NIL)")
    tc.S(f"* FLAGS (NIL {SYSTEM})", "* OK [PERMANENTFLAGS (…NIL…)] …", "* 1 FETCH (FLAGS (NIL))",
         "a1 OK …", ordered=True)  # fmt: skip


def test_another_sessions_store_is_announced_before_its_fetch(tc: Script, tc2: Script) -> None:
    tc.append("INBOX", text_message("One"))
    _select(tc)
    _select(tc2)
    tc2.C("b1 STORE 1 +FLAGS.SILENT ($Urgent)")
    tc2.S(f"* FLAGS ($Urgent {SYSTEM})", "b1 OK …")
    tc.C("a1 NOOP")
    tc.S(f"* FLAGS ($Urgent {SYSTEM})", "* OK [PERMANENTFLAGS (…$Urgent…)] …",
         "* 1 FETCH (FLAGS ($Urgent))", "a1 OK …", ordered=True)  # fmt: skip


def test_append_with_a_keyword_into_the_selected_mailbox(tc: Script) -> None:
    _select(tc)
    message = text_message("Keyword on arrival")
    tc.C(f"a1 APPEND INBOX ($Biologie) {{{len(message)}}}")
    tc.S("+ …")
    tc.C(message)
    tc.S(f"* FLAGS ($Biologie {SYSTEM})", "* 1 EXISTS", "a1 OK …")
    tc.C("a2 FETCH 1 (FLAGS)")
    tc.S("* 1 FETCH (FLAGS ($Biologie))", "a2 OK …", absent=["* FLAGS …"])


def test_copy_and_move_bring_their_keywords(tc: Script, tc2: Script) -> None:
    tc.append("INBOX", text_message("One"), flags="$Label1")
    tc.append("INBOX", text_message("Two"), flags="$Label2")
    tc.C("c1 CREATE Kept")
    tc.S("c1 OK …")
    _select(tc2, "Kept", "t1")
    tc.C("s1 SELECT INBOX")
    tc.S("s1 OK …")
    tc.C("a1 COPY 1 Kept")
    tc.S("a1 OK [COPYUID …] …")
    tc.C("a2 MOVE 2 Kept")
    tc.S("a2 OK …")
    tc2.C("b1 NOOP")
    tc2.S("* FLAGS ($Label1 …)", "* 2 EXISTS", "b1 OK …")
    tc2.C("b2 FETCH 1:2 (FLAGS)")
    tc2.S("* 1 FETCH (FLAGS ($Label1))", "* 2 FETCH (FLAGS ($Label2))", "b2 OK …",
          absent=["* FLAGS …"])  # fmt: skip


def test_fetch_of_a_message_whose_keyword_was_never_told(tc: Script, tc2: Script) -> None:
    _select(tc)
    tc2.append("INBOX", text_message("Tagged elsewhere"), flags="$Cardio")
    # EXISTS comes with the FLAGS that names the keyword, before any FETCH shows it.
    tc.C("a1 NOOP")
    tc.S(f"* FLAGS ($Cardio {SYSTEM})", "* 1 EXISTS", "a1 OK …", ordered=True)
    tc.C("a2 FETCH 1:* (UID FLAGS)")
    tc.S("* 1 FETCH (UID {} FLAGS ($Cardio))", "a2 OK …", absent=["* FLAGS …"])

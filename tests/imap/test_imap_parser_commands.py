"""Every command of IMAP4rev2/rev1 and the extensions, parsed into its typed form."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from server.imap.proto import ProtocolErrorEvent, SequenceSet
from server.imap.proto import commands as c
from server.imap.proto.commands import FetchAttribute as FA
from server.imap.proto.commands import SearchKey as K
from server.imap.proto.commands import Section
from server.imap.proto.mailbox import UNDECODABLE

Parse = Callable[..., object]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"a CAPABILITY", c.Capability("a")),
        (b"a noop", c.Noop("a")),
        (b"a LOGOUT", c.Logout("a")),
        (b"a STARTTLS", c.StartTLS("a")),
        (b"a NAMESPACE", c.Namespace("a")),
        (b"a IDLE", c.Idle("a")),
        (b"a CHECK", c.Check("a")),
        (b"a CLOSE", c.Close("a")),
        (b"a UNSELECT", c.Unselect("a")),
        (b"a EXPUNGE", c.Expunge("a")),
        (b"a UID EXPUNGE 3:5", c.Expunge("a", True, SequenceSet(((3, 5),)))),
    ],
)
def test_simple_commands(parse: Parse, line: bytes, expected: c.Command) -> None:
    assert parse(line + b"\r\n") == expected


def test_arguments_where_none_allowed(parse: Parse) -> None:
    err = parse(b"a NOOP now\r\n")
    assert isinstance(err, ProtocolErrorEvent) and err.tag == "a"


def test_authenticate(parse: Parse) -> None:
    assert parse(b"a AUTHENTICATE plain\r\n") == c.Authenticate("a", "PLAIN")
    assert parse(b"a AUTHENTICATE PLAIN AGIAcA==\r\n") == c.Authenticate("a", "PLAIN", b"\0b\0p")
    assert parse(b"a AUTHENTICATE EXTERNAL =\r\n") == c.Authenticate("a", "EXTERNAL", b"")
    assert isinstance(parse(b"a AUTHENTICATE PLAIN @@@\r\n"), ProtocolErrorEvent)


def test_login_forms(parse: Parse) -> None:
    assert parse(b"a LOGIN bob secret\r\n") == c.Login("a", "bob", "secret")
    assert parse(b'a LOGIN "bob" "se\\"c\\\\ret"\r\n') == c.Login("a", "bob", 'se"c\\ret')
    assert parse(b"a LOGIN bob {3+}\r\nx y\r\n") == c.Login("a", "bob", "x y")
    assert isinstance(parse(b"a LOGIN bob\r\n"), ProtocolErrorEvent)
    assert isinstance(parse(b'a LOGIN bob "unterminated\r\n'), ProtocolErrorEvent)


def test_login_password_hidden_from_repr(parse: Parse) -> None:
    assert "secret" not in repr(parse(b"a LOGIN bob secret\r\n"))


def test_id(parse: Parse) -> None:
    assert parse(b"a ID NIL\r\n") == c.Id("a", None)
    assert parse(b'a ID ("name" "mutt" "version" NIL)\r\n') == c.Id(
        "a", (("name", "mutt"), ("version", None))
    )
    assert parse(b"a ID ()\r\n") == c.Id("a", ())


def test_enable(parse: Parse) -> None:
    assert parse(b"a ENABLE CONDSTORE utf8=accept\r\n") == c.Enable(
        "a", ("CONDSTORE", "UTF8=ACCEPT")
    )
    assert isinstance(parse(b"a ENABLE\r\n"), ProtocolErrorEvent)


def test_select_examine(parse: Parse) -> None:
    assert parse(b"a SELECT inbox\r\n") == c.Select("a", "INBOX")
    ex = parse(b'a EXAMINE "Archive/2024"\r\n')
    assert ex == c.Examine("a", "Archive/2024") and isinstance(ex, c.Examine) and ex.readonly
    assert parse(b"a SELECT INBOX (CONDSTORE)\r\n") == c.Select("a", "INBOX", True)
    q = parse(b"a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n")
    assert isinstance(q, c.Select) and q.qresync is not None
    assert q.qresync.uidvalidity == 67890007 and q.qresync.modseq == 20050715194045000
    assert str(q.qresync.known_uids) == "41,43:211,214:541"
    q = parse(b"a SELECT INBOX (QRESYNC (1 2 1:9 (1,5 10,50)))\r\n")
    assert isinstance(q, c.Select) and q.qresync is not None
    assert str(q.qresync.known_sequence_set) == "1,5" and str(q.qresync.known_uid_set) == "10,50"
    assert isinstance(parse(b"a SELECT INBOX (FOO)\r\n"), ProtocolErrorEvent)


def test_mailbox_commands(parse: Parse) -> None:
    assert parse(b"a CREATE Drafts\r\n") == c.Create("a", "Drafts")
    assert parse(b"a CREATE Spam (USE (\\Junk))\r\n") == c.Create("a", "Spam", ("\\Junk",))
    assert parse(b"a DELETE old\r\n") == c.Delete("a", "old")
    assert parse(b"a RENAME old new\r\n") == c.Rename("a", "old", "new")
    assert parse(b"a SUBSCRIBE x\r\n") == c.Subscribe("a", "x")
    assert parse(b"a UNSUBSCRIBE x\r\n") == c.Unsubscribe("a", "x")
    assert parse(b"a GETQUOTAROOT INBOX\r\n") == c.GetQuotaRoot("a", "INBOX")
    assert parse(b'a GETQUOTA ""\r\n') == c.GetQuota("a", "")


def test_mailbox_names_modified_utf7_and_utf8(parse: Parse) -> None:
    assert parse(b"a SELECT &AMk-t&AOk-\r\n") == c.Select("a", "Été")
    assert parse(b"a SELECT Tom&-Jerry\r\n") == c.Select("a", "Tom&Jerry")
    # RFC 3501 §5.1.3: a name that is not valid modified UTF-7 is still an astring: it
    # parses, and names no mailbox (the server answers NO [NONEXISTENT], not BAD).
    assert parse(b"a SELECT bad&name\r\n") == c.Select("a", UNDECODABLE + "bad&name")
    assert isinstance(parse('a SELECT "Été"\r\n'.encode()), ProtocolErrorEvent)
    assert parse('a SELECT "Été"\r\n'.encode(), utf8=True) == c.Select("a", "Été")
    assert parse(b'a SELECT "&AMk-"\r\n', utf8=True) == c.Select("a", "&AMk-")
    assert parse(b"a SELECT InBoX\r\n") == c.Select("a", "INBOX")


def test_list(parse: Parse) -> None:
    assert parse(b'a LIST "" *\r\n') == c.List("a", "", ("*",))
    assert parse(b"a LIST ~/Mail/ %\r\n") == c.List("a", "~/Mail/", ("%",))
    cmd = parse(
        b'a LIST (SUBSCRIBED RECURSIVEMATCH) "" ("INBOX" "Sent/%") '
        b"RETURN (CHILDREN STATUS (MESSAGES UNSEEN) SPECIAL-USE)\r\n"
    )
    assert cmd == c.List(
        "a", "", ("INBOX", "Sent/%"), ("SUBSCRIBED", "RECURSIVEMATCH"),
        ("CHILDREN", "STATUS", "SPECIAL-USE"), ("MESSAGES", "UNSEEN"), True,
    )  # fmt: skip
    assert parse(b'a LIST "" "" RETURN ()\r\n') == c.List("a", "", ("",), extended=True)
    assert parse(b'a LSUB "" News/*\r\n') == c.Lsub("a", "", "News/*")


def test_status(parse: Parse) -> None:
    assert parse(b"a STATUS blurdybloop (UIDNEXT MESSAGES HIGHESTMODSEQ)\r\n") == c.Status(
        "a", "blurdybloop", ("UIDNEXT", "MESSAGES", "HIGHESTMODSEQ")
    )
    assert isinstance(parse(b"a STATUS x (BOGUS)\r\n"), ProtocolErrorEvent)
    assert isinstance(parse(b"a STATUS x ()\r\n"), ProtocolErrorEvent)


def test_append(parse: Parse) -> None:
    cmd = parse(
        b'a APPEND saved-messages (\\seen $Forwarded) "05-Jul-1994 02:04:05 -0700" {5}\r\nhello\r\n'
    )
    tz = dt.timezone(dt.timedelta(hours=-7))
    assert cmd == c.Append(
        "a",
        "saved-messages",
        (
            c.AppendMessage(
                ("\\Seen", "$Forwarded"), dt.datetime(1994, 7, 5, 2, 4, 5, tzinfo=tz), b"hello"
            ),
        ),
    )
    cmd = parse(b'a APPEND x " 5-Jul-1994 02:04:05 +0200" {1}\r\nA\r\n')
    assert isinstance(cmd, c.Append) and cmd.messages[0].date_time is not None
    assert cmd.messages[0].date_time.day == 5
    assert isinstance(parse(b"a APPEND x (\\Recent) {1}\r\nA\r\n"), ProtocolErrorEvent)
    assert isinstance(
        parse(b'a APPEND x "31-Feb-2020 00:00:00 +0000" {1}\r\nA\r\n'), ProtocolErrorEvent
    )
    assert isinstance(parse(b"a APPEND x\r\n"), ProtocolErrorEvent)


def test_multiappend(parse: Parse) -> None:
    cmd = parse(b"a APPEND INBOX (\\Seen) {3}\r\none {3}\r\ntwo\r\n")
    assert isinstance(cmd, c.Append)
    assert [m.data for m in cmd.messages] == [b"one", b"two"]
    assert [m.flags for m in cmd.messages] == [("\\Seen",), ()]


def test_search_basic(parse: Parse) -> None:
    cmd = parse(b'a SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"\r\n')
    assert cmd == c.Search(
        "a",
        c.SearchAnd(
            (K("FLAGGED"), K("SINCE", (dt.date(1994, 2, 1),)), c.SearchNot(K("FROM", ("Smith",))))
        ),
    )


def test_search_full_grammar(parse: Parse) -> None:
    cmd = parse(
        b"a UID SEARCH RETURN (MIN COUNT SAVE) CHARSET UTF-8 OR (SEEN LARGER 100) UNSEEN "
        b'1:3,5 UID $ HEADER X-Mailer "mutt" KEYWORD $Junk SENTBEFORE "2-Jan-2020" '
        b'MODSEQ "/flags/\\\\draft" all 620162338 SMALLER 9 OLDER 60 TEXT {4+}\r\ntext\r\n'
    )
    assert isinstance(cmd, c.Search)
    assert cmd.uid and cmd.charset == "UTF-8" and cmd.return_options == ("MIN", "COUNT", "SAVE")
    keys = cmd.criteria.operands
    assert keys[0] == c.SearchOr(c.SearchAnd((K("SEEN"), K("LARGER", (100,)))), K("UNSEEN"))
    assert keys[1] == K("SEQSET", (SequenceSet(((1, 3), (5, 5))),))
    assert keys[2] == K("UID", (SequenceSet(saved=True),))
    assert keys[3] == K("HEADER", (("X-MAILER", "mutt"),)) or keys[3] == K(
        "HEADER", (("X-Mailer", "mutt"),)
    )
    assert keys[4] == K("KEYWORD", ("$Junk",))
    assert keys[5] == K("SENTBEFORE", (dt.date(2020, 1, 2),))
    assert keys[6] == K("MODSEQ", (("/flags/\\draft", "all"), 620162338))
    assert keys[7:] == (K("SMALLER", (9,)), K("OLDER", (60,)), K("TEXT", ("text",)))
    assert parse(b"a SEARCH RETURN () ALL\r\n") == c.Search("a", c.SearchAnd((K("ALL"),)), None, ())


def test_search_charset_decoding(parse: Parse) -> None:
    cmd = parse(b"a SEARCH CHARSET ISO-8859-1 SUBJECT {3+}\r\n\xe9t\xe9\r\n")
    assert isinstance(cmd, c.Search) and cmd.criteria.operands[0] == K("SUBJECT", ("été",))
    err = parse(b"a SEARCH CHARSET X-KLINGON ALL\r\n")
    assert isinstance(err, ProtocolErrorEvent)
    assert (err.status, err.code) == ("NO", "BADCHARSET (UTF-8 US-ASCII)")


def test_search_errors(parse: Parse) -> None:
    for bad in (
        b"a SEARCH\r\n",
        b"a SEARCH BOGUS\r\n",
        b"a SEARCH (SEEN\r\n",
        b"a SEARCH OR SEEN\r\n",
        b"a SEARCH SINCE 32-Jan-2020\r\n",
        b"a SEARCH 0:3\r\n",
    ):
        err = parse(bad)
        assert isinstance(err, ProtocolErrorEvent) and err.tag == "a", bad


def test_fetch_macros(parse: Parse) -> None:
    cmd = parse(b"a FETCH 1:* ALL\r\n")
    assert isinstance(cmd, c.Fetch)
    assert [a.name for a in cmd.attributes] == ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"]
    cmd = parse(b"a FETCH 1 fast\r\n")
    assert isinstance(cmd, c.Fetch) and len(cmd.attributes) == 3
    cmd = parse(b"a FETCH 1 FULL\r\n")
    assert isinstance(cmd, c.Fetch) and cmd.attributes[-1] == FA("BODY")


def test_fetch_all_attributes(parse: Parse) -> None:
    cmd = parse(
        b"a UID FETCH 1:* (FLAGS UID INTERNALDATE RFC822 RFC822.SIZE RFC822.HEADER RFC822.TEXT "
        b"ENVELOPE BODY BODYSTRUCTURE BODY[] BODY.PEEK[HEADER.FIELDS (From Subject)]<0.100> "
        b"BODY[1.2.MIME] BODY[2.HEADER] BODY[TEXT] BODY[3.HEADER.FIELDS.NOT (X-A)] "
        b"BINARY[1] BINARY.PEEK[1.2]<5.10> BINARY.SIZE[2] MODSEQ) (CHANGEDSINCE 12345 VANISHED)\r\n"
    )
    assert isinstance(cmd, c.Fetch)
    assert cmd.uid and cmd.changed_since == 12345 and cmd.vanished
    assert str(cmd.sequence_set) == "1:*" or cmd.sequence_set.ranges[0] == (1, None)
    atts = cmd.attributes
    assert [a.name for a in atts[:10]] == [
        "FLAGS", "UID", "INTERNALDATE", "RFC822", "RFC822.SIZE", "RFC822.HEADER", "RFC822.TEXT",
        "ENVELOPE", "BODY", "BODYSTRUCTURE",
    ]  # fmt: skip
    assert atts[10] == FA("BODY", Section())
    assert atts[11] == FA("BODY", Section((), "HEADER.FIELDS", ("FROM", "SUBJECT")), (0, 100), True)
    assert atts[11].response_name() == "BODY[HEADER.FIELDS (FROM SUBJECT)]<0>"
    assert not atts[11].sets_seen and atts[10].sets_seen
    assert atts[12] == FA("BODY", Section((1, 2), "MIME"))
    assert atts[13] == FA("BODY", Section((2,), "HEADER"))
    assert atts[14] == FA("BODY", Section((), "TEXT"))
    assert atts[15] == FA("BODY", Section((3,), "HEADER.FIELDS.NOT", ("X-A",)))
    assert atts[16] == FA("BINARY", Section((1,)))
    assert atts[17] == FA("BINARY", Section((1, 2)), (5, 10), True)
    assert atts[18] == FA("BINARY.SIZE", Section((2,)))
    assert atts[19] == FA("MODSEQ")


def test_fetch_sequence_set_with_saved_result(parse: Parse) -> None:
    cmd = parse(b"a FETCH $ FLAGS\r\n")
    assert isinstance(cmd, c.Fetch) and cmd.sequence_set.saved


def test_fetch_errors(parse: Parse) -> None:
    for bad in (
        b"a FETCH 1 BODY[MIME]\r\n",
        b"a FETCH 1 BODY[0]\r\n",
        b"a FETCH 1 (FLAGS\r\n",
        b"a FETCH 1 BOGUS\r\n",
        b"a FETCH 1 BODY[HEADER.FIELDS ()]\r\n",
        b"a FETCH * FLAGS x\r\n",
        b"a FETCH 1 FLAGS (VANISHED)\r\n",
        b"a FETCH 1 BODY[]<1.0>\r\n",
        b"a FETCH 4294967296 UID\r\n",
    ):
        err = parse(bad)
        assert isinstance(err, ProtocolErrorEvent) and err.tag == "a", bad


def test_store(parse: Parse) -> None:
    assert parse(b"a STORE 2:4 +FLAGS (\\Deleted)\r\n") == c.Store(
        "a", SequenceSet(((2, 4),)), "add", False, ("\\Deleted",)
    )
    assert parse(b"a UID STORE 1 -FLAGS.SILENT \\Seen $Junk\r\n") == c.Store(
        "a", SequenceSet(((1, 1),)), "remove", True, ("\\Seen", "$Junk"), None, True
    )
    assert parse(b"a STORE * (UNCHANGEDSINCE 320162338) FLAGS ()\r\n") == c.Store(
        "a", SequenceSet(((None, None),)), "replace", False, (), 320162338
    )
    assert isinstance(parse(b"a STORE 1 FLAGS.LOUD (\\Seen)\r\n"), ProtocolErrorEvent)


def test_copy_move(parse: Parse) -> None:
    assert parse(b"a COPY 2:4 MEETING\r\n") == c.Copy("a", SequenceSet(((2, 4),)), "MEETING")
    assert parse(b"a UID MOVE 42 Trash\r\n") == c.Move("a", SequenceSet(((42, 42),)), "Trash", True)
    assert parse(b"a UID COPY 1 Archive\r\n") == c.Copy(
        "a", SequenceSet(((1, 1),)), "Archive", True
    )


def test_uid_needs_a_uid_command(parse: Parse) -> None:
    err = parse(b"a UID LOGIN x y\r\n")
    assert isinstance(err, ProtocolErrorEvent) and err.tag == "a"


def test_sort_and_thread(parse: Parse) -> None:
    cmd = parse(b"a UID SORT (REVERSE DATE SUBJECT) UTF-8 SINCE 1-Feb-1994\r\n")
    assert cmd == c.Sort(
        "a",
        (c.SortCriterion("DATE", True), c.SortCriterion("SUBJECT")),
        "UTF-8",
        c.SearchAnd((K("SINCE", (dt.date(1994, 2, 1),)),)),
        None,
        True,
    )
    cmd = parse(b"a THREAD REFERENCES US-ASCII TEXT foo\r\n")
    assert cmd == c.Thread("a", "REFERENCES", "US-ASCII", c.SearchAnd((K("TEXT", ("foo",)),)))
    assert isinstance(parse(b"a SORT (BOGUS) UTF-8 ALL\r\n"), ProtocolErrorEvent)


def test_tags(parse: Parse) -> None:
    assert parse(b"A0001.x! NOOP\r\n") == c.Noop("A0001.x!")
    assert isinstance(parse(b"a+b NOOP\r\n"), ProtocolErrorEvent)
    assert isinstance(parse(b"NOOP\r\n"), ProtocolErrorEvent)


def test_typical_fetch_is_fast(parse: Parse) -> None:
    import time

    from server.imap.proto import CommandParser

    p = CommandParser()
    line = b"a1 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)])\r\n"
    start = time.perf_counter()
    for _ in range(2000):
        p.receive_data(line)
        p.next_event()
    per_command = (time.perf_counter() - start) / 2000
    assert per_command < 500e-6  # tens of µs in practice; generous for slow CI

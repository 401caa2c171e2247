"""STATUS (RFC 9051 §6.3.11) with SIZE (RFC 8438) and HIGHESTMODSEQ (RFC 7162)."""

from __future__ import annotations

from tests.imap_server.dialogue import Script, status_items
from tests.imap_server.messages import text_message

ITEMS = "MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ"


def test_every_item(tc: Script) -> None:
    messages = [text_message("Seen one"), text_message("Unseen"), text_message("Deleted")]
    tc.append("INBOX", messages[0], flags="\\Seen")
    tc.append("INBOX", messages[1])
    tc.append("INBOX", messages[2], flags="\\Seen \\Deleted")
    tc.C(f"a1 STATUS INBOX ({ITEMS})")
    tc.S("* STATUS INBOX ({items:.*})", "a1 OK …")
    items = status_items(tc.vars["items"])
    assert set(items) == set(ITEMS.split())
    assert items["MESSAGES"] == 3
    assert items["UNSEEN"] == 1
    assert items["DELETED"] == 1
    assert items["SIZE"] == sum(len(m) for m in messages)
    assert items["HIGHESTMODSEQ"] > 0
    # The same UIDVALIDITY and UIDNEXT that SELECT announces.
    tc.C("a2 SELECT INBOX")
    tc.S(
        f"* OK [UIDVALIDITY {items['UIDVALIDITY']}] …",
        f"* OK [UIDNEXT {items['UIDNEXT']}] …",
        "a2 OK …",
    )


def test_of_an_empty_default_folder(tc: Script) -> None:
    tc.C("a1 STATUS Drafts (MESSAGES UNSEEN SIZE)")
    tc.S("* STATUS Drafts ({items:.*})", "a1 OK …")
    assert status_items(tc.vars["items"]) == {"MESSAGES": 0, "UNSEEN": 0, "SIZE": 0}


def test_highestmodseq_grows_with_a_change(tc: Script) -> None:
    tc.append("INBOX", text_message("Changes"))
    tc.C("a1 STATUS INBOX (HIGHESTMODSEQ)")
    tc.S("* STATUS INBOX (HIGHESTMODSEQ {before})", "a1 OK …")
    tc.C("a2 SELECT INBOX")
    tc.S("a2 OK …")
    tc.C("a3 STORE 1 +FLAGS.SILENT (\\Flagged)")
    tc.S("a3 OK …")
    tc.C("a4 STATUS INBOX (HIGHESTMODSEQ)")
    tc.S("* STATUS INBOX (HIGHESTMODSEQ {after})", "a4 OK …")
    assert int(tc.vars["after"]) > int(tc.vars["before"])


def test_unknown_mailbox(tc: Script) -> None:
    tc.C("a1 STATUS No-Such-Folder (MESSAGES)")
    tc.S("a1 NO …", absent=["* STATUS …"])


def test_unknown_item_is_bad(tc: Script) -> None:
    tc.C("a1 STATUS INBOX (MESSAGES NO-SUCH-ITEM)")
    tc.S("a1 BAD …")
    tc.C("a2 NOOP")
    tc.S("a2 OK …")


def test_empty_item_list_is_bad(tc: Script) -> None:
    tc.C("a1 STATUS INBOX ()")
    tc.S("a1 BAD …")

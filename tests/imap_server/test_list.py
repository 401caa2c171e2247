"""LIST (RFC 9051 §6.3.9) with LIST-EXTENDED (RFC 5258), CHILDREN (RFC 3348), SPECIAL-USE
(RFC 6154) and LIST-STATUS (RFC 5819). Every account starts with INBOX, Sent, Drafts, Trash
and Archive (issue 3 item 4)."""

from __future__ import annotations

from tests.imap_server.dialogue import Script, listed, status_items
from tests.imap_server.messages import text_message

DEFAULTS = {"INBOX", "Sent", "Drafts", "Trash", "Archive"}


def test_default_folders(tc: Script) -> None:
    tc.C('a1 LIST "" *')
    reply = tc.S(
        '* LIST (…) "/" INBOX', '* LIST (…) "/" Sent', '* LIST (…) "/" Drafts',
        '* LIST (…) "/" Trash', '* LIST (…) "/" Archive', "a1 OK …",
    )  # fmt: skip
    assert set(listed(reply)) == DEFAULTS


def test_default_folders_carry_their_special_use(tc: Script) -> None:
    tc.C('a1 LIST "" * RETURN (SPECIAL-USE)')
    reply = tc.S(
        '* LIST (…\\Sent…) "/" Sent', '* LIST (…\\Drafts…) "/" Drafts',
        '* LIST (…\\Trash…) "/" Trash', '* LIST (…\\Archive…) "/" Archive', "a1 OK …",
    )  # fmt: skip
    uses = {"\\sent", "\\drafts", "\\trash", "\\archive", "\\junk", "\\all", "\\flagged"}
    assert not listed(reply)["INBOX"] & uses


def test_special_use_selection(tc: Script) -> None:
    tc.C("a1 CREATE Projects")
    tc.S("a1 OK …")
    tc.C('a2 LIST (SPECIAL-USE) "" *')
    reply = tc.S("a2 OK …")
    assert set(listed(reply)) == {"Sent", "Drafts", "Trash", "Archive"}


def test_hierarchy_delimiter(tc: Script) -> None:
    tc.C('a1 LIST "" ""')
    tc.S('* LIST (\\Noselect) "/" ""', "a1 OK …")


def test_star_and_percent(tc: Script) -> None:
    tc.C("a1 CREATE Projects/2025/Q4")
    tc.S("a1 OK …")
    tc.C('a2 LIST "" %')
    reply = tc.S('* LIST (…) "/" Projects', "a2 OK …")
    assert set(listed(reply)) == DEFAULTS | {"Projects"}
    tc.C('a3 LIST "" Projects/%')
    reply = tc.S('* LIST (…) "/" Projects/2025', "a3 OK …")
    assert set(listed(reply)) == {"Projects/2025"}
    tc.C('a4 LIST "" Projects/*')
    reply = tc.S("a4 OK …")
    assert set(listed(reply)) == {"Projects/2025", "Projects/2025/Q4"}


def test_reference_is_prefixed_to_the_pattern(tc: Script) -> None:
    tc.C("a1 CREATE Projects/2025")
    tc.S("a1 OK …")
    tc.C('a2 LIST "Projects/" %')
    tc.S('* LIST (…) "/" Projects/2025', "a2 OK …")


def test_inbox_matches_in_any_case(tc: Script) -> None:
    tc.C('a1 LIST "" inbox')
    tc.S('* LIST (…) "/" INBOX', "a1 OK …")


def test_children_return_option(tc: Script) -> None:
    tc.C("a1 CREATE Projects/2025")
    tc.S("a1 OK …")
    tc.C('a2 LIST "" Projects* RETURN (CHILDREN)')
    tc.S(
        '* LIST (…\\HasChildren…) "/" Projects',
        '* LIST (…\\HasNoChildren…) "/" Projects/2025',
        "a2 OK …",
    )


def test_several_patterns(tc: Script) -> None:
    tc.C('a1 LIST "" (INBOX Sent)')
    reply = tc.S('* LIST (…) "/" INBOX', '* LIST (…) "/" Sent', "a1 OK …")
    assert set(listed(reply)) == {"INBOX", "Sent"}


def test_subscribed_selection_and_return(tc: Script) -> None:
    tc.C("a1 CREATE Projects")
    tc.S("a1 OK …")
    tc.C("a2 CREATE Other")
    tc.S("a2 OK …")
    tc.C("a3 SUBSCRIBE Projects")
    tc.S("a3 OK …")
    tc.C('a4 LIST (SUBSCRIBED) "" *')
    reply = tc.S('* LIST (…\\Subscribed…) "/" Projects', "a4 OK …")
    assert "Other" not in listed(reply)
    tc.C('a5 LIST "" % RETURN (SUBSCRIBED)')
    reply = tc.S('* LIST (…\\Subscribed…) "/" Projects', '* LIST (…) "/" Other', "a5 OK …")
    assert "\\subscribed" not in listed(reply)["Other"]


def test_recursivematch_reports_subscribed_children(tc: Script) -> None:
    tc.C("a1 CREATE Team/Minutes")
    tc.S("a1 OK …")
    tc.C("a2 SUBSCRIBE Team/Minutes")
    tc.S("a2 OK …")
    tc.C('a3 LIST (SUBSCRIBED RECURSIVEMATCH) "" %')
    # RFC 5258 §3.5: Team is not subscribed but has a subscribed child.
    tc.S('* LIST ({:[^)]*}) "/" Team ("CHILDINFO" ("SUBSCRIBED"))', "a3 OK …")


def test_recursivematch_alone_is_bad(tc: Script) -> None:
    tc.C('a1 LIST (RECURSIVEMATCH) "" %')
    tc.S("a1 BAD …")


def test_return_status(tc: Script) -> None:
    tc.append("INBOX", text_message("Unread"))
    tc.append("INBOX", text_message("Read"), flags="\\Seen")
    tc.C('a1 LIST "" INBOX RETURN (STATUS (MESSAGES UNSEEN SIZE))')
    tc.S('* LIST (…) "/" INBOX', "* STATUS INBOX ({status:.*})", "a1 OK …", ordered=True)
    items = status_items(tc.vars["status"])
    assert items["MESSAGES"] == 2 and items["UNSEEN"] == 1
    assert items["SIZE"] == len(text_message("Unread")) + len(text_message("Read"))


def test_unknown_selection_option_is_bad(tc: Script) -> None:
    tc.C('a1 LIST (NO-SUCH-OPTION) "" *')
    tc.S("a1 BAD …")
    tc.C("a2 NOOP")
    tc.S("a2 OK …")


def test_childinfo_only_where_a_subscribed_child_is_not_returned(tc: Script) -> None:
    # RFC 5258 §3.5: CHILDINFO ("SUBSCRIBED") marks a parent whose subscribed descendants
    # the patterns do not return; with several patterns, a child another pattern returns
    # needs no CHILDINFO on its parent.
    for i, name in enumerate(("Ext/test2/test1", "Ext/test7/test7", "Ext/test8/test8",
                              "Ext/test8/test9")):  # fmt: skip
        tc.C(f"c{i} CREATE {name}")
        tc.S(f"c{i} OK …")
        tc.C(f"u{i} SUBSCRIBE {name}")
        tc.S(f"u{i} OK …")
    tc.C('a1 LIST (SUBSCRIBED RECURSIVEMATCH) "" (Ext/test2)')
    tc.S('* LIST (\\HasChildren) "/" Ext/test2 ("CHILDINFO" ("SUBSCRIBED"))', "a1 OK …")
    tc.C('a2 LIST (SUBSCRIBED RECURSIVEMATCH) "" (Ext/test2 Ext/test2/test1)')
    reply = tc.S('* LIST (\\HasNoChildren \\Subscribed) "/" Ext/test2/test1', "a2 OK …")
    assert "Ext/test2" not in listed(reply)
    tc.C('a3 LIST (SUBSCRIBED RECURSIVEMATCH) "" *test7')
    reply = tc.S('* LIST (\\HasNoChildren \\Subscribed) "/" Ext/test7/test7', "a3 OK …")
    assert "Ext/test7" not in listed(reply)
    tc.C('a4 LIST (SUBSCRIBED RECURSIVEMATCH) "" *test8')
    tc.S('* LIST (\\HasChildren) "/" Ext/test8 ("CHILDINFO" ("SUBSCRIBED"))',
         '* LIST (\\HasNoChildren \\Subscribed) "/" Ext/test8/test8', "a4 OK …")  # fmt: skip
    tc.C('a5 LIST (SUBSCRIBED RECURSIVEMATCH) "" Ext/test2% RETURN (CHILDREN)')
    tc.S('* LIST (\\HasChildren) "/" Ext/test2 ("CHILDINFO" ("SUBSCRIBED"))', "a5 OK …")

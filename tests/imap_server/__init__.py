"""Scripted IMAP dialogues against a real ``hygie serve`` on loopback, over TLS: one file per
command or extension of RFC 9051 / RFC 3501 and the extensions Hygie advertises (issue 3).

Each module gets its own server (``conftest.server``) and each test its own account, so tests
do not see each other's mailboxes."""

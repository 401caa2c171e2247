"""Interoperability with real IMAP clients (issue 3 item 7): Python's ``imaplib``,
``aioimaplib``, ``offlineimap3`` syncing a Maildir both ways, and ``neomutt`` driven in ``tmux``,
each against a real ``hygie serve`` over TLS trusting the data directory's root CA."""

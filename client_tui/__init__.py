"""hygie-client: the Textual terminal mail client and ``hygie-client send``.

Speaks standard IMAP4rev2/rev1 (RFC 9051/3501, IDLE RFC 2177) and SMTP submission (RFC 6409)
with SASL PLAIN, EXTERNAL and OAUTHBEARER (RFC 7628), so it works with any server; knows the
MSSanté conventions (XDM attachments, DSN RFC 3461 and MDN RFC 8098 receipts).

Layout: ``config`` (accounts), ``tlsauth`` (TLS contexts and credentials), ``imap`` and
``smtp`` (protocol clients, no Textual), ``compose`` (RFC 5322 messages), ``cli`` (the command),
``app`` and ``screens`` (the Textual interface).
"""

"""The network side of Hygie: SMTP submission (RFC 5321, RFC 6409, RFC 3207, RFC 4954),
IMAP (RFC 9051 / RFC 3501), the delivery pipeline and the ``hygie`` command line."""

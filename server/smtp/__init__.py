"""SMTP submission (RFC 6409) on aiosmtpd: STARTTLS (RFC 3207), implicit TLS (RFC 8314),
AUTH (RFC 4954), SIZE (RFC 1870), 8BITMIME and SMTPUTF8, with durable acceptance."""

"""IMAP4rev2 (RFC 9051) with IMAP4rev1 (RFC 3501) compatibility.

``proto/`` is the sans-I/O core (parser, formatter, state table); ``session.py`` is the thin
asyncio adapter that binds it to a socket and to :mod:`storage`."""

"""Who is logging in (design.md §4): the authenticator (passwords, certificates, tokens), SASL
messages (RFC 4422, 4616, 7628), OAuth bearer tokens, the patients' second factor.
"""

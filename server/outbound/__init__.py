"""Mail for other operators (design.md §2 step 6): the durable queue and its relay client over
mutual TLS, DKIM signing and verification (RFC 6376), the MSSanté trusted-domain list.
"""

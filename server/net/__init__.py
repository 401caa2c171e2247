"""The network edge of every listener: the PROXY protocol (HAProxy's, versions 1 and 2) that a
load balancer in front of the nodes speaks, accepted only from the configured proxies.

``proxy_protocol`` is the sans-I/O parser (bytes in, a header or a protocol error out);
``listener`` the asyncio adapter that reads the header from a listed proxy before the
listener's own protocol (SMTP, IMAP, HTTP, TLS) sees a byte, so that the client's address is
what every later check (rate limits, the login guard, the audit log, ``Received:``) reads as
the connection's peer. docs/operations.md says how to deploy it behind HAProxy.
"""

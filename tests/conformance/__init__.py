"""MSSanté conformance: one module per test case of ``../shared/mssante-reference.md`` (b),
named after it (``test_case_<n>_<subject>.py``), each asserting what the case says against a
real ``hygie serve`` over real TLS sockets, as a user of the case would see it."""

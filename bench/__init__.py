"""Benchmarks of Hygie (``make bench``) and the harness that runs ``hygie serve`` as a separate
process, shared with the end-to-end tests: ``harness`` (a server on free loopback ports) and
``smtp_load`` (the SMTP submission load scenario of issue 2, target ≥ 500 messages/s)."""

"""End-to-end tests: ``hygie serve`` as a separate process on free loopback ports, driven by
real clients (``smtplib``, ``imaplib``, ``aioimaplib``, ``swaks``), on SQLite and PostgreSQL."""

"""Hygie's storage: SQLAlchemy 2 schema with Alembic migrations (SQLite WAL or PostgreSQL),
the encrypted blob store, the key hierarchy (master key → per-mailbox X25519 keys →
per-message AES-256-GCM content keys sealed with HPKE, RFC 9180) and mailbox operations
with group commit."""

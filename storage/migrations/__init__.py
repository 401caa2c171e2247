"""Alembic migrations of Hygie's schema; :func:`storage.db.migrate` runs them."""

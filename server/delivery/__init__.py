"""The pipeline every message takes (design.md §2): parse once, ordered steps with declared
hooks, one commit, after-commit work from an outbox; local delivery into encrypted mailboxes.
"""

"""The ``hygie`` command (design.md §8): one module per command group.
"""

"""The ``hygie`` command (design.md §7): one module per command group.

``main.py`` is the root group and the table of commands; each group is imported only when one
of its commands runs or its help is asked, so ``hygie --help`` starts without the server:
``init.py`` (``init``, ``serve``), ``accounts.py`` (``user``, ``token``), ``pki.py``,
``queue.py``, ``outbox.py``, ``audit.py``, ``dkim.py``, ``directory.py``, ``patient.py``,
``catalogue.py``, ``report.py``; ``common.py`` holds what they share.
"""

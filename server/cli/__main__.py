"""``python -m server.cli``: the ``hygie`` command."""

from server.cli.main import main

main()

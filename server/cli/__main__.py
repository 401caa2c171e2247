"""``python -m server.cli.main``: the ``hygie`` command."""

from server.cli.main import main

main()

"""design.md §1: ``client_tui`` talks to the server only over the network (no ``server`` or
``storage`` import), and the protocol layer loads without Textual (``send`` from cron)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "client_tui"
PROTOCOL = [
    "imap",
    "smtp",
    "credentials",
    "compose",
    "session",
    "config",
    "directory",
    "cli",
    "mssante",
    "appointments",
]


def test_no_server_or_storage_import() -> None:
    for source in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in ("server", "storage"), f"{source.name}: {name}"


def test_protocol_layer_without_textual() -> None:
    modules = ", ".join(f"client_tui.{m}" for m in PROTOCOL)
    code = f"import sys, {modules}; print('textual' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    assert proc.stdout.strip() == "False"

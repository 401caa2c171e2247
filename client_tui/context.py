"""The running client as the screens see it: the Textual app is the ``HygieClient``
(:mod:`client_tui.app`), which imports the screens; the screens reach it through this
function, so no screen imports the app back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from client_tui.app import HygieClient


def client_of(app: Any) -> HygieClient:
    """``app`` is the HygieClient that runs every screen of this package."""
    return cast("HygieClient", app)

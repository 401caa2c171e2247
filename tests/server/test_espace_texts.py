"""Every text of the patient's space exists in every language (server/http/espace/i18n.py):
each message id a template or a page asks for, and the same ids in each column, so that no page
fails (a missing key is a 500) or shows an id instead of French."""

from __future__ import annotations

import re
from pathlib import Path

from server.http.espace.i18n import TEXT

HERE = Path(__file__).parents[2] / "server" / "http" / "espace"


def used_ids() -> set[str]:
    found: set[str] = set()
    for template in (HERE / "templates").glob("*.html"):
        found |= set(re.findall(r"\bt\.([a-z_0-9]+)", template.read_text()))
    for module in HERE.glob("*.py"):
        source = module.read_text()
        found |= set(re.findall(r"\bt\[\"([a-z_0-9]+)\"\]", source))
        found |= set(re.findall(r"\"(nav_[a-z]+|act_[a-z]+|doc_[a-z]+|msg_[a-z_]+)\"", source))
    return found


def test_every_language_has_the_same_ids() -> None:
    french = set(TEXT["fr"])
    for language, texts in TEXT.items():
        assert set(texts) == french, (language, set(texts) ^ french)


def test_every_id_in_use_has_a_text() -> None:
    used = used_ids()
    assert len(used) > 50  # the scan finds the pages' texts
    missing = {i for i in used if i not in TEXT["fr"]}
    assert missing == set()

"""docs/catalogue.md shows the manifest's JSON Schema: the one the code validates with."""

from __future__ import annotations

import json
import re
from pathlib import Path

from catalogue.manifest import SCHEMA

DOC = Path(__file__).resolve().parents[2] / "docs" / "catalogue.md"


def test_the_documented_schema_is_the_schema() -> None:
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text("utf-8"), re.S)
    documented = [json.loads(b) for b in blocks if '"$schema"' in b]
    assert documented == [SCHEMA]

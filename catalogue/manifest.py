"""The app manifest an editor sends to ``catalogue@<domain>`` (issue 10 item 2).

A manifest is one JSON object (RFC 8259, UTF-8) checked in three layers, and every problem
found is reported, not only the first:

1. our own limits before parsing: at most :data:`MAX_BYTES`, UTF-8, no duplicate keys, no
   ``NaN``/``Infinity``, nesting at most :data:`MAX_DEPTH`;
2. the JSON Schema :data:`SCHEMA` (Draft 2020-12, checked by ``jsonschema``): types, required
   members, lengths, enumerations, patterns, no unknown member;
3. rules a schema cannot say: no markup, script or control characters in text; the service URL
   is ``https://`` with a host and no credentials; the SIRET's Luhn key.

What needs the operator's state (the APP mailbox exists here, the certificate is ours and bound
to it, the sender belongs to the editor) is checked by :mod:`catalogue.registry`.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from catalogue.criteria import CRITERIA
from catalogue.scopes import SCOPES

MAX_BYTES: Final = 64 * 1024
MAX_DEPTH: Final = 8
MAX_ERRORS: Final = 50  # a hostile manifest does not get a reply as long as itself

CATEGORIES: Final = (
    "télémédecine",
    "prise de rendez-vous",
    "suivi de pathologie",
    "prévention",
    "coordination des soins",
)

_TEXT = {"type": "string", "minLength": 1}
SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://hygie.test/schemas/catalogue-manifest-1.json",
    "title": "Hygie catalogue manifest, version 1",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "manifestVersion", "id", "name", "version", "editor", "description", "categories",
        "serviceUrl", "mailbox", "certificate", "scopes", "criteria",
    ],
    "properties": {
        "manifestVersion": {"const": 1},
        "id": {"type": "string", "pattern": "^[a-z0-9]+(\\.[a-z0-9-]+)+$", "maxLength": 100},
        "name": {**_TEXT, "maxLength": 80},
        "version": {
            "type": "string",
            "pattern": "^[0-9]+\\.[0-9]+(\\.[0-9]+)?(-[0-9A-Za-z.]+)?$",
            "maxLength": 32,
        },
        "editor": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "siret"],
            "properties": {
                "name": {**_TEXT, "maxLength": 200},
                "siret": {"type": "string", "pattern": "^[0-9]{14}$"},
            },
        },
        "description": {**_TEXT, "maxLength": 2000},
        "categories": {
            "type": "array",
            "minItems": 1,
            "maxItems": len(CATEGORIES),
            "uniqueItems": True,
            "items": {"enum": list(CATEGORIES)},
        },
        "serviceUrl": {"type": "string", "maxLength": 2048},  # https only: see _url_problems
        "mailbox": {"type": "string", "maxLength": 320, "pattern": "^[^@\\s]+@[^@\\s]+$"},
        "certificate": {"type": "string", "pattern": "^[0-9A-Fa-f]{1,40}$"},
        "scopes": {
            "type": "array",
            "minItems": 1,
            "maxItems": len(SCOPES),
            "uniqueItems": True,
            "items": {"enum": list(SCOPES)},
        },
        "criteria": {
            "type": "object",
            "additionalProperties": False,
            "required": list(CRITERIA),
            "properties": {code: {**_TEXT, "maxLength": 2000} for code in CRITERIA},
        },
    },
}


@functools.cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator  # imported when a manifest comes, not by `hygie`

    Draft202012Validator.check_schema(SCHEMA)
    return Draft202012Validator(SCHEMA)


# Markup and script: a tag opener, a script URL scheme, an inline event handler, an entity.
_MARKUP = re.compile(
    r"<\s*[A-Za-z!/?]|(?:java|vb)script\s*:|data\s*:\s*text/html|\bon[a-z]+\s*=|&#?[A-Za-z0-9]+;",
    re.I,
)
# Bidirectional overrides and isolates (a displayed name that reads otherwise than it is).
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class ManifestError(Exception):
    """The manifest is refused; ``problems`` lists every reason, each fit for the editor."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems[:MAX_ERRORS]


@dataclass(frozen=True)
class Manifest:
    key: str
    name: str
    version: str
    editor_name: str
    editor_siret: str
    description: str
    categories: tuple[str, ...]
    service_url: str
    mailbox: str
    certificate: str  # upper-case hexadecimal serial
    scopes: tuple[str, ...]
    criteria: dict[str, str]
    document: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(self.document, ensure_ascii=False, sort_keys=True)


def siret_ok(siret: str) -> bool:
    """The Luhn key of a SIRET (INSEE); La Poste's establishments (SIREN 356000000) may use
    the sum of the digits modulo 5 instead."""
    if not re.fullmatch(r"[0-9]{14}", siret):
        return False
    if siret.startswith("356000000") and sum(int(c) for c in siret) % 5 == 0:
        return True
    total = 0
    for index, char in enumerate(reversed(siret)):
        digit = int(char)
        if index % 2:
            digit *= 2
            digit -= 9 if digit > 9 else 0
        total += digit
    return total % 10 == 0


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"the member {_quote(key)} appears twice")
        seen[key] = value
    return seen


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259)")


def _depth(value: Any, level: int = 1) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level


def _quote(text: str, limit: int = 40) -> str:
    """A value echoed in an error, shortened, without anything unprintable or markup."""
    clean = "".join(c if c.isprintable() and c not in "<>&" else "?" for c in text)
    return repr(clean if len(clean) <= limit else clean[:limit] + "…")


def _pointer(path: Any) -> str:
    parts = [str(p) for p in path]
    return "/" + "/".join(parts) if parts else "the manifest"


def _schema_problem(error: Any) -> str:
    where = _pointer(error.absolute_path)
    kind = error.validator
    if kind == "required":
        missing = [m for m in error.validator_value if m not in (error.instance or {})]
        return f"{where}: missing member(s) {', '.join(missing)}"
    if kind == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"{where}: unknown member(s) {', '.join(_quote(e) for e in extra[:10])}"
    if kind == "type":
        return f"{where}: must be of type {error.validator_value}"
    if kind == "maxLength":
        return f"{where}: longer than {error.validator_value} characters"
    if kind == "minLength":
        return f"{where}: must not be empty"
    if kind == "pattern":
        return f"{where}: {_quote(str(error.instance))} has not the expected form"
    if kind == "enum":
        allowed = ", ".join(str(v) for v in error.validator_value)
        return f"{where}: {_quote(str(error.instance))} is not one of: {allowed}"
    if kind == "const":
        return f"{where}: must be {error.validator_value!r}"
    if kind in ("minItems", "maxItems"):
        return f"{where}: {kind} is {error.validator_value}"
    if kind == "uniqueItems":
        return f"{where}: items must not repeat"
    return f"{where}: {kind} {error.validator_value!r} not met"


def _text_problems(where: str, text: str, *, multiline: bool) -> list[str]:
    problems = []
    if _MARKUP.search(text):
        problems.append(f"{where}: markup or script is not allowed in text")
    allowed = "\n\t" if multiline else ""
    if any(unicodedata.category(c) == "Cc" and c not in allowed for c in text):
        problems.append(f"{where}: control characters are not allowed")
    if any(c in _BIDI for c in text):
        problems.append(f"{where}: bidirectional override characters are not allowed")
    return problems


def _url_problems(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ["/serviceUrl: not a valid URL"]
    problems = []
    if parts.scheme != "https":
        problems.append("/serviceUrl: must be an https:// URL")
    if not parts.hostname or "." not in parts.hostname.strip("."):
        problems.append("/serviceUrl: needs a fully qualified host name")
    if parts.username is not None or parts.password is not None:
        problems.append("/serviceUrl: must not carry credentials")
    if any(c.isspace() or not c.isprintable() for c in url):
        problems.append("/serviceUrl: must not contain spaces or control characters")
    if port == 0:
        problems.append("/serviceUrl: bad port")
    return problems


def parse(data: bytes) -> Manifest:
    """The manifest in ``data``, or :class:`ManifestError` with every problem found."""
    if len(data) > MAX_BYTES:
        raise ManifestError([f"the manifest is larger than {MAX_BYTES // 1024} KiB"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestError(["the manifest is not UTF-8"]) from None
    try:
        document = json.loads(
            text.removeprefix("\ufeff"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_constant,
        )
    except RecursionError:
        raise ManifestError(["the manifest is nested too deeply"]) from None
    except ValueError as exc:  # JSONDecodeError is a ValueError, as are ours above
        raise ManifestError([f"not valid JSON: {str(exc)[:200]}"]) from None
    if _depth(document) > MAX_DEPTH:
        raise ManifestError([f"the manifest is nested deeper than {MAX_DEPTH} levels"])
    errors = sorted(_validator().iter_errors(document), key=lambda e: [str(p) for p in e.path])
    # jsonschema reports a missing member once per "required" keyword: say it once.
    problems = list(dict.fromkeys(_schema_problem(e) for e in errors))
    if not isinstance(document, dict):
        raise ManifestError(problems or ["the manifest must be a JSON object"])
    problems += _rules(document)
    if problems:
        raise ManifestError(problems)
    return from_document(document)


def _rules(document: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    texts: list[tuple[str, Any, bool]] = [
        ("/name", document.get("name"), False),
        ("/description", document.get("description"), True),
    ]
    editor = document.get("editor")
    if isinstance(editor, dict):
        texts.append(("/editor/name", editor.get("name"), False))
        siret = editor.get("siret")
        if isinstance(siret, str) and re.fullmatch(r"[0-9]{14}", siret) and not siret_ok(siret):
            problems.append("/editor/siret: wrong check digit (Luhn key)")
    criteria = document.get("criteria")
    if isinstance(criteria, dict):
        texts += [(f"/criteria/{k}", v, True) for k, v in criteria.items() if k in CRITERIA]
    for where, value, multiline in texts:
        if isinstance(value, str):
            problems += _text_problems(where, value, multiline=multiline)
    url = document.get("serviceUrl")
    if isinstance(url, str) and len(url) <= 2048:
        problems += _url_problems(url)
    return problems


def from_document(document: dict[str, Any]) -> Manifest:
    """The manifest of a document that passed :func:`parse` (as stored with its version)."""
    return Manifest(
        key=document["id"],
        name=document["name"].strip(),
        version=document["version"],
        editor_name=document["editor"]["name"].strip(),
        editor_siret=document["editor"]["siret"],
        description=document["description"].strip(),
        categories=tuple(document["categories"]),
        service_url=document["serviceUrl"],
        mailbox=document["mailbox"].strip().lower(),
        certificate=document["certificate"].upper().lstrip("0") or "0",
        scopes=tuple(s for s in SCOPES if s in document["scopes"]),
        criteria={k: document["criteria"][k].strip() for k in CRITERIA},
        document=document,
    )

"""FHIR R4 read API of the directory: Practitioner, PractitionerRole, Organization.

Shaped like the ANS Annuaire Santé FHIR API (v2): read by id, search with ``GET``, a
``searchset`` Bundle with ``self``/``next``/``previous`` links, an OperationOutcome on every
error. MSSanté mailboxes (BAL) are ``telecom`` entries (``system = email``, ``rank`` 1 for the
preferred one) carrying the two ANS extensions: the FR Core e-mail type ``MSSANTE``
(TRE_R256) and the mailbox metadata (type TRE_R257, listeRouge, service, digitization).
A liste-rouge mailbox is never shown and never matches a search.

Logical ids: the IdNat of a practitioner, the structure IdNat of an organisation, the number
of an activity for a PractitionerRole. Search parameters: ``name``, ``family``, ``given``
(word prefixes, accents and case ignored), ``identifier`` (``[system|]value``),
``mailbox-mss`` (prefix; ``:contains``, ``:exact``), ``mailbox-mss-type``, ``address-city``,
``address-postalcode``, ``_lastUpdated`` (``eq``/``gt``/``ge``/``lt``/``le``),
``_count`` (default 50, at most 500), ``_offset`` (at most 10,000); comma-separated values
are alternatives (OR).
``_include=PractitionerRole:practitioner`` / ``:organization`` (or ``PractitionerRole:*``)
adds the resources a page of roles refers to (``search.mode = include``, not counted in
``total``). ``POST [type]/_search`` takes the same parameters form-encoded.

Every search is bounded (issue 26; docs/security.md "Limits of untrusted input"): at most
:data:`MAX_PARAMETERS` parameters, :data:`MAX_ALTERNATIVES` alternatives in each, values of at
most :data:`MAX_VALUE` characters without control characters, else a 400 naming the parameter.
A search with many alternatives (:data:`HEAVY_TERMS`) is planned in a thread and waits for one
of :data:`HEAVY_SEARCHES` places, so that a few hostile requests cannot hold up the others.

Read-only: PATCH, PUT, POST (but ``_search``) and DELETE get 405. The directory is a copy of
the national one (ANS), replaced by each import; a local change would be overwritten by the
next import or would fork from it. This operator's own mailboxes are changed with
``hygie directory mailbox`` (:mod:`directory.local`).

Pure of any server code: :func:`handle` takes a method, a path below the FHIR base, the
query and the base URL, and returns a status and a JSON document.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from directory.idnat import OID_IDNAT_PS, OID_IDNAT_STRUCT
from directory.search import (
    PgPlan,
    SearchError,
    expression_plan,
    lexeme_frequencies,
    match_expression,
    pg_page,
    tsquery_literal,
)
from directory.text import (
    ORGANISATION,
    PRACTITIONER,
    city_token,
    family_token,
    fold,
    given_token,
    mailbox_type_token,
    postcode_token,
    squash,
)
from storage.db import Database

JSON = dict[str, Any]
FHIR_VERSION = "4.0.1"
DEFAULT_COUNT = 50
MAX_COUNT = 500
#: Deepest page (``_offset``): each page is read from the index's start, so a deeper one costs
#: more; a client wanting the whole directory takes the ANS extract, not 4,000 pages.
MAX_OFFSET = 10_000
#: Parameters in one search (each occurrence counts, ``_count`` and the like too).
MAX_PARAMETERS = 20
#: Alternatives (comma-separated values) in one parameter.
MAX_ALTERNATIVES = 20
#: Characters in one value: a name, a town, an address (RFC 5321 §4.5.3.1.3: a path is at
#: most 256 octets) or an identifier fits.
MAX_VALUE = 256
#: A search with more full-text terms or address patterns than this is *heavy*: planned in a
#: thread, and at most :data:`HEAVY_SEARCHES` run at once in a process; the others wait up to
#: :data:`HEAVY_WAIT` seconds, then get a 429.
HEAVY_TERMS = 8
HEAVY_SEARCHES = 2
HEAVY_WAIT = 10.0
EXT_EMAIL_TYPE = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-contact-point-email-type"
EXT_MAILBOX = (
    "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/"
    "as-ext-mailbox-mss-metadata"
)
TRE_R256 = "https://mos.esante.gouv.fr/NOS/TRE_R256-TypeMessagerie/FHIR/TRE-R256-TypeMessagerie"
TRE_R257 = "https://mos.esante.gouv.fr/NOS/TRE_R257-TypeBAL/FHIR/TRE-R257-TypeBAL"
TRE_G15 = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
TRE_R38 = (
    "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"
)
RESOURCES = ("Practitioner", "PractitionerRole", "Organization")
COMMON_PARAMS = {
    "name",
    "family",
    "given",
    "identifier",
    "mailbox-mss",
    "mailbox-mss-type",
    "address-city",
    "address-postalcode",
    "_lastUpdated",
    "_count",
    "_offset",
    "_format",
    "_pretty",
    "_include",
}
#: ``_include`` values accepted, by resource type searched.
INCLUDES = {
    "PractitionerRole": {
        "PractitionerRole:practitioner": "practitioner",
        "PractitionerRole:organization": "organization",
    },
}
FORM = "application/x-www-form-urlencoded"
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_DATE = re.compile(
    r"^(eq|ne|gt|ge|lt|le|sa|eb)?([0-9]{4}(-[0-9]{2}(-[0-9]{2}(T[0-9:.]+(Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?)$"
)
_NUMBER = re.compile(r"^[0-9]{1,9}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class FhirError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _shown(text: str, limit: int = 40) -> str:
    """A client's text echoed in an error: printable, shortened."""
    clean = "".join(c if c.isprintable() else "?" for c in text[: limit + 1])
    return repr(clean if len(clean) <= limit else clean[:limit] + "…")


def outcome(code: str, message: str) -> JSON:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": message}],
    }


async def handle(
    db: Database,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    base: str,
    body: bytes = b"",
    content_type: str = "",
) -> tuple[int, JSON]:
    """``path`` is below the FHIR base: ``Practitioner``, ``Practitioner/810000005479`` …

    ``POST [type]/_search`` takes its parameters form-encoded in ``body`` (and in the query
    string): the same search as a GET, for clients whose parameters would not fit a URL.
    """
    try:
        parts = [p for p in path.strip("/").split("/") if p]
        if method == "POST" and len(parts) == 2 and parts[1] == "_search":
            if content_type.split(";")[0].strip().lower() != FORM:
                raise FhirError(415, "not-supported", f"POST _search takes {FORM}")
            try:
                form = parse_qsl(
                    body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_PARAMETERS
                )
            except UnicodeDecodeError:
                raise FhirError(400, "invalid", "the form is not UTF-8") from None
            except ValueError:  # max_num_fields
                raise FhirError(400, "too-costly", _too_many_parameters()) from None
            query, parts = [*query, *form], parts[:1]
        elif method not in ("GET", "HEAD"):
            raise FhirError(405, "not-supported", f"{method} is not supported: read-only API")
        if parts == ["metadata"]:
            return 200, capability_statement(base)
        if not parts or parts[0] not in RESOURCES or len(parts) > 2:
            raise FhirError(404, "not-found", f"no such resource type or path: {_shown(path)}")
        kind = parts[0]
        if len(parts) == 2:
            if query and any(k not in ("_format", "_pretty") for k, _ in query):
                raise FhirError(400, "invalid", "a read takes no search parameters")
            return 200, await read(db, kind, parts[1])
        return 200, await search(db, kind, query, base)
    except FhirError as exc:
        return exc.status, outcome(exc.code, str(exc))
    except SearchError as exc:
        return 400, outcome("invalid", str(exc))


# -- rendering ---------------------------------------------------------------------------------


def _instant(value: Any) -> str:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        stamp: str = value.astimezone(dt.UTC).isoformat(timespec="milliseconds")
        return stamp.replace("+00:00", "Z")
    return str(value)


def telecom(address: str, kind: str, preferred: bool, service: str, digitization: bool) -> JSON:
    meta: list[JSON] = [
        {"url": "type", "valueCodeableConcept": {"coding": [{"system": TRE_R257, "code": kind}]}},
        {"url": "listeRouge", "valueBoolean": False},
        {"url": "digitization", "valueBoolean": bool(digitization)},
    ]
    if service:
        meta.append({"url": "service", "valueString": service})
    entry: JSON = {
        "extension": [
            {"url": EXT_EMAIL_TYPE, "valueCoding": {"system": TRE_R256, "code": "MSSANTE"}},
            {"url": EXT_MAILBOX, "extension": meta},
        ],
        "system": "email",
        "value": address,
    }
    if preferred:
        entry["rank"] = 1
    return entry


@dataclass
class _Mailboxes:
    rows: list[tuple[Any, ...]]

    def of_practitioner(self, idnat: str, organisation: str | None = None) -> list[JSON]:
        return [
            telecom(r[0], r[1], bool(r[4]), r[5], bool(r[6]))
            for r in self.rows
            if r[2] == idnat and (organisation is None or r[3] in ("", organisation))
        ]

    def of_organisation(self, identifier: str) -> list[JSON]:
        return [
            telecom(r[0], r[1], bool(r[4]), r[5], bool(r[6]))
            for r in self.rows
            if r[3] == identifier and not r[2]
        ]


async def _mailboxes(db: Database, column: str, keys: list[str]) -> _Mailboxes:
    if not keys:
        return _Mailboxes([])
    rows = await db.raw_rows(
        "SELECT address, type, practitioner_idnat, organisation_identifier, preferred, service,"
        " digitization FROM dir_mailboxes WHERE active AND NOT liste_rouge"
        f" AND {column} IN ({_marks(keys)}) ORDER BY preferred DESC, address",
        *keys,
    )
    return _Mailboxes(rows)


_P_COLS = (
    "p.idnat, p.civility, p.family, p.given, p.profession_code, p.profession_label,"
    " p.specialty_code, p.specialty_label, p.active, p.updated_at"
)


def practitioner(row: Sequence[Any], mailboxes: _Mailboxes) -> JSON:
    idnat = str(row[0])
    identifiers: list[JSON] = [{"system": OID_IDNAT_PS, "value": idnat}]
    if idnat.startswith("8"):
        identifiers.append({"system": "https://rpps.esante.gouv.fr", "value": idnat[1:]})
    name: JSON = {"family": row[2]}
    if row[3]:
        name["given"] = [row[3]]
    if row[1]:
        name["prefix"] = [row[1]]
    resource: JSON = {
        "resourceType": "Practitioner",
        "id": idnat,
        "meta": {"lastUpdated": _instant(row[9])},
        "identifier": identifiers,
        "active": bool(row[8]),
        "name": [name],
    }
    boxes = mailboxes.of_practitioner(idnat)
    if boxes:
        resource["telecom"] = boxes
    qualifications = []
    if row[4]:
        qualifications.append(
            {"code": {"coding": [{"system": TRE_G15, "code": row[4], "display": row[5]}]}}
        )
    if row[6]:
        qualifications.append(
            {"code": {"coding": [{"system": TRE_R38, "code": row[6], "display": row[7]}]}}
        )
    if qualifications:
        resource["qualification"] = qualifications
    return resource


_O_COLS = (
    "o.identifier, o.finess, o.siret, o.name, o.trade_name, o.address, o.postcode, o.city,"
    " o.active, o.updated_at"
)


def organization(row: Sequence[Any], mailboxes: _Mailboxes) -> JSON:
    identifier = str(row[0])
    identifiers: list[JSON] = [{"system": OID_IDNAT_STRUCT, "value": identifier}]
    if row[1]:
        identifiers.append({"system": "http://finess.sante.gouv.fr", "value": row[1]})
    if row[2]:
        identifiers.append({"system": "http://sirene.fr", "value": row[2]})
    resource: JSON = {
        "resourceType": "Organization",
        "id": identifier,
        "meta": {"lastUpdated": _instant(row[9])},
        "identifier": identifiers,
        "active": bool(row[8]),
    }
    if row[3] or row[4]:
        resource["name"] = row[3] or row[4]
    if row[4] and row[3]:
        resource["alias"] = [row[4]]
    boxes = mailboxes.of_organisation(identifier)
    if boxes:
        resource["telecom"] = boxes
    if row[5] or row[6] or row[7]:
        address: JSON = {"use": "work", "country": "FRA"}
        if row[5]:
            address["line"] = [row[5]]
        if row[7]:
            address["city"] = row[7]
        if row[6]:
            address["postalCode"] = row[6]
        resource["address"] = [address]
    return resource


_R_COLS = (
    "a.id, a.practitioner_idnat, a.organisation_identifier, a.mode, a.role, a.active,"
    " a.updated_at, p.profession_code, p.profession_label, p.specialty_code, p.specialty_label"
)


def practitioner_role(row: Sequence[Any], mailboxes: _Mailboxes) -> JSON:
    resource: JSON = {
        "resourceType": "PractitionerRole",
        "id": str(row[0]),
        "meta": {"lastUpdated": _instant(row[6])},
        "active": bool(row[5]),
        "practitioner": {"reference": f"Practitioner/{row[1]}"},
    }
    if row[2]:
        resource["organization"] = {"reference": f"Organization/{row[2]}"}
    codes = []
    if row[7]:
        codes.append({"coding": [{"system": TRE_G15, "code": row[7], "display": row[8]}]})
    if row[4]:
        codes.append({"text": row[4]})
    if codes:
        resource["code"] = codes
    if row[9]:
        resource["specialty"] = [
            {"coding": [{"system": TRE_R38, "code": row[9], "display": row[10]}]}
        ]
    boxes = mailboxes.of_practitioner(str(row[1]), str(row[2]))
    if boxes:
        resource["telecom"] = boxes
    return resource


# -- read --------------------------------------------------------------------------------------


async def read(db: Database, kind: str, logical_id: str) -> JSON:
    if not _ID.match(logical_id):
        raise FhirError(400, "invalid", "not a FHIR logical id")
    if kind == "Practitioner":
        rows = await db.raw_rows(
            f"SELECT {_P_COLS} FROM dir_practitioners p WHERE p.idnat = ?", logical_id
        )
        if rows:
            return practitioner(rows[0], await _mailboxes(db, "practitioner_idnat", [logical_id]))
    elif kind == "Organization":
        rows = await db.raw_rows(
            f"SELECT {_O_COLS} FROM dir_organisations o WHERE o.identifier = ?", logical_id
        )
        if rows:
            boxes = await _mailboxes(db, "organisation_identifier", [logical_id])
            return organization(rows[0], boxes)
    elif logical_id.isdigit():
        rows = await db.raw_rows(
            f"SELECT {_R_COLS} FROM dir_activities a JOIN dir_practitioners p"
            " ON p.idnat = a.practitioner_idnat WHERE a.id = ?",
            int(logical_id),
        )
        if rows:
            boxes = await _mailboxes(db, "practitioner_idnat", [str(rows[0][1])])
            return practitioner_role(rows[0], boxes)
    raise FhirError(404, "not-found", f"{kind}/{logical_id} not found")  # _ID: short, plain


# -- search ------------------------------------------------------------------------------------


@dataclass
class _Params:
    values: dict[str, list[tuple[str, list[str]]]]  # name → [(modifier, alternatives)]

    def get(self, name: str) -> list[tuple[str, list[str]]]:
        return self.values.get(name, [])


def _too_many_parameters() -> str:
    return f"at most {MAX_PARAMETERS} parameters in one search"


def _parse(query: Sequence[tuple[str, str]]) -> tuple[_Params, int, int]:
    values: dict[str, list[tuple[str, list[str]]]] = {}
    count, offset = DEFAULT_COUNT, 0
    if len(query) > MAX_PARAMETERS:
        raise FhirError(400, "too-costly", _too_many_parameters())
    for raw_name, value in query:
        name, _, modifier = raw_name.partition(":")
        if name not in COMMON_PARAMS:
            raise FhirError(400, "not-supported", f"unknown search parameter {_shown(name)}")
        if modifier and not (name == "mailbox-mss" and modifier in ("contains", "exact")):
            if not (modifier == "exact" and name in ("name", "family", "given")):
                raise FhirError(
                    400, "not-supported", f"modifier {_shown(modifier)} not supported on {name}"
                )
        if _CONTROL.search(value):
            raise FhirError(400, "invalid", f"{name}: control characters are not allowed")
        if name in ("_count", "_offset"):
            if not _NUMBER.match(value):
                raise FhirError(400, "invalid", f"{name} must be a non-negative integer")
            if name == "_count":
                count = min(MAX_COUNT, max(1, int(value)))
            else:
                offset = int(value)
                if offset > MAX_OFFSET:
                    raise FhirError(
                        400, "too-costly",
                        f"_offset is at most {MAX_OFFSET}: narrow the search instead",
                    )  # fmt: skip
            continue
        if name in ("_format", "_pretty"):
            continue
        alternatives = [v for v in value.split(",") if v.strip()]
        if not alternatives:
            raise FhirError(400, "invalid", f"empty value for {name}")
        if len(alternatives) > MAX_ALTERNATIVES:
            raise FhirError(
                400, "too-costly", f"{name}: at most {MAX_ALTERNATIVES} alternatives (values"
                " separated by commas)",
            )  # fmt: skip
        if any(len(v) > MAX_VALUE for v in alternatives):
            raise FhirError(400, "too-long", f"{name}: a value is at most {MAX_VALUE} characters")
        if name == "_include":
            values.setdefault(name, []).append(("", [value]))
            continue
        values.setdefault(name, []).append((modifier, alternatives))
    return _Params(values), count, offset


def _date_clause(column: str, value: str) -> tuple[str, list[Any]]:
    m = _DATE.match(value)
    if not m:
        raise FhirError(400, "invalid", f"_lastUpdated: not a FHIR date: {_shown(value)}")
    prefix, text = m.group(1) or "eq", m.group(2)
    try:
        start, end = _date_range(text)
    except (ValueError, OverflowError):  # 2024-02-30, 2024-13, 0000, an offset of +99:00
        raise FhirError(400, "invalid", f"_lastUpdated: not a FHIR date: {_shown(value)}") from None
    ops = {
        "gt": (f"{column} >= ?", [end]),
        "sa": (f"{column} >= ?", [end]),
        "ge": (f"{column} >= ?", [start]),
        "lt": (f"{column} < ?", [start]),
        "eb": (f"{column} < ?", [start]),
        "le": (f"{column} < ?", [end]),
        "eq": (f"{column} >= ? AND {column} < ?", [start, end]),
        "ne": (f"({column} < ? OR {column} >= ?)", [start, end]),
    }
    sql, params = ops[prefix]
    return sql, params


#: The end of time for a range that would end after year 9999 (``_lastUpdated=9999``).
_LAST = dt.datetime.max.replace(tzinfo=dt.UTC)


def _after(start: dt.datetime, step: dt.timedelta | None = None, *, months: int = 0) -> dt.datetime:
    """``start`` moved ``step`` or ``months`` on, or :data:`_LAST` past year 9999."""
    try:
        if step is not None:
            return start + step
        month = start.month - 1 + months
        return start.replace(year=start.year + month // 12, month=month % 12 + 1)
    except (ValueError, OverflowError):
        return _LAST


def _date_range(text: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a FHIR date, to the precision given (raises ValueError if invalid)."""
    if len(text) == 4:
        start = dt.datetime(int(text), 1, 1, tzinfo=dt.UTC)
        return start, _after(start, months=12)
    if len(text) == 7:
        start = dt.datetime(int(text[:4]), int(text[5:7]), 1, tzinfo=dt.UTC)
        return start, _after(start, months=1)
    if len(text) == 10:
        start = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
        return start, _after(start, dt.timedelta(days=1))
    instant = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=dt.UTC)
    instant = instant.astimezone(dt.UTC)  # OverflowError before year 1 or after 9999
    return instant, _after(instant, dt.timedelta(seconds=1))


class _Where:
    """SQL conditions (ANDed) and their parameters."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.sql: list[str] = []
        self.params: list[Any] = []
        self.fts_prefix: list[list[str]] = []  # each inner list: OR of prefix terms
        self.fts_exact: list[list[str]] = []
        #: (expression, kind) when the full-text match is the only condition: the page is
        #: then read from the index in its order instead of joining every match.
        self.fts_only: tuple[str, str] | None = None

    def add(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.sql.append(sql)
        self.params.extend(params)

    def time(self, value: dt.datetime) -> Any:
        if self.dialect == "sqlite":
            return (
                value.astimezone(dt.UTC)
                .replace(tzinfo=None)
                .isoformat(sep=" ", timespec="microseconds")
            )
        return value


def _fts_expression(
    dialect: str, groups_prefix: list[list[str]], groups_exact: list[list[str]]
) -> str:
    parts = []
    for group in groups_prefix:
        terms = [match_expression(dialect, [t], []) for t in group]
        parts.append(_or(dialect, terms))
    for group in groups_exact:
        terms = [match_expression(dialect, [], [t]) for t in group]
        parts.append(_or(dialect, terms))
    return (" AND " if dialect == "sqlite" else " & ").join(parts)


def _or(dialect: str, terms: list[str]) -> str:
    if len(terms) == 1:
        return terms[0]
    return "(" + (" OR " if dialect == "sqlite" else " | ").join(terms) + ")"


def _fts_clause(where: _Where, kind_token: str, column: str) -> None:
    if not where.fts_prefix and not where.fts_exact:
        return
    expr = _fts_expression(where.dialect, where.fts_prefix, [*where.fts_exact, [kind_token]])
    kind = "P" if kind_token == PRACTITIONER else "O"
    where.fts_only = (expr, kind) if not where.sql else None
    if where.dialect == "sqlite":
        where.add(
            f"{column} IN (SELECT s.ref FROM dir_search s WHERE s.kind = '{kind}' AND s.id IN"
            " (SELECT rowid FROM dir_search_fts WHERE dir_search_fts MATCH ?))",
            [expr],
        )
    else:
        where.add(
            f"{column} IN (SELECT s.ref FROM dir_search s WHERE s.kind = '{kind}' AND"
            f" s.tsv @@ {tsquery_literal(expr)})"
        )


async def _page_from_index(
    db: Database, plan: _Plan, count: int, offset: int
) -> list[tuple[Any, ...]]:
    """``count + 1`` rows from ``offset``, in the full-text index's order."""
    assert plan.index is not None
    expr, pg = plan.index
    if pg is None:
        sql = (
            "SELECT ref FROM dir_search WHERE id IN (SELECT rowid FROM dir_search_fts"
            " WHERE dir_search_fts MATCH ? ORDER BY rowid LIMIT ? OFFSET ?) ORDER BY id"
        )
        refs = [str(r[0]) for r in await db.raw_rows(sql, expr, count + 1, offset)]
    else:  # never a sequential scan gambling on early matches (directory.search.pg_page)
        refs = [str(r[1]) for r in await pg_page(db, pg, count + 1, offset)]
    if not refs:
        return []
    rows = await db.raw_rows(
        f"SELECT {plan.cols} FROM {plan.table} {plan.alias} WHERE {plan.key}"
        f" IN ({_marks(refs)})",
        *refs,
    )
    order = {ref: i for i, ref in enumerate(refs)}
    return sorted(rows, key=lambda r: order[str(r[0])])


def _word_terms(name: str, values: list[str], token: Any = None) -> list[str]:
    terms = []
    for v in values:
        if token is not None:
            if squash(v):
                terms.append(token(v))
        else:
            terms += fold(v).split()[:1]
    if not terms:
        raise FhirError(400, "invalid", f"{name}: a value needs at least one letter or digit")
    return terms


def _place_terms(name: str, values: list[str], token: Any) -> list[str]:
    """A town or postcode group: an empty group would be a full-text syntax error."""
    terms = [token(v) for v in values if squash(v)]
    if not terms:
        raise FhirError(400, "invalid", f"{name}: a value needs at least one letter or digit")
    return terms


def _mailbox_clause(where: _Where, params: _Params, owner: str, owner_column: str) -> None:
    """``mailbox-mss`` (prefix), ``:contains`` and ``:exact``, case-insensitive.

    Candidates come from a trigram index (migration 0016: FTS5 ``trigram`` on SQLite,
    ``pg_trgm`` on PostgreSQL), where ``_`` in a LIKE pattern matches any character; each is
    then checked exactly. Values shorter than three characters cannot use the index.
    """
    for modifier, values in params.get("mailbox-mss"):
        ors = []
        for v in values:
            v = v.strip().lower().replace("%", "")
            if not v:
                raise FhirError(400, "invalid", "empty value for mailbox-mss")
            # PostgreSQL's LIKE escapes with a backslash (a pattern ending in one is an
            # error); in SQLite's it is an ordinary character.
            like = v if where.dialect == "sqlite" else v.replace("\\", "\\\\")
            pattern = {"exact": like, "contains": f"%{like}%"}.get(modifier, f"{like}%")
            if where.dialect == "sqlite":
                candidates = "m.id IN (SELECT rowid FROM dir_mailboxes_trgm WHERE address LIKE ?)"
                check = {
                    "exact": "lower(m.address) = ?",
                    "contains": "instr(lower(m.address), ?) > 0",
                }
            else:
                candidates = "lower(m.address) LIKE ?"
                check = {
                    "exact": "lower(m.address) = ?",
                    "contains": "strpos(lower(m.address), ?) > 0",
                }
            exact_check = check.get(modifier, "substr(lower(m.address), 1, ?) = ?")
            ors.append(f"({candidates} AND {exact_check})")
            where.params.append(pattern)
            if modifier in ("exact", "contains"):
                where.params.append(v)
            else:
                where.params += [len(v), v]
        extra = " AND m.practitioner_idnat || '' = ''" if owner == "organisation_identifier" else ""
        where.sql.append(
            f"{owner_column} IN (SELECT m.{owner} FROM dir_mailboxes m WHERE m.active"
            f" AND NOT m.liste_rouge{extra} AND ({' OR '.join(ors)}))"
        )


def _identifier_values(values: list[str]) -> list[str]:
    out = []
    for v in values:
        value = v.rpartition("|")[2].strip()
        out.append(value)
        if len(value) == 11 and value.isdigit():
            out.append("8" + value)  # an RPPS alone (system https://rpps.esante.gouv.fr)
    return out


def _common(where: _Params, w: _Where) -> None:
    for _, values in where.get("mailbox-mss-type"):
        kinds = [v.strip().upper() for v in values]
        if any(k not in ("PER", "ORG", "APP", "CAB") for k in kinds):
            raise FhirError(400, "invalid", "mailbox-mss-type is one of PER, ORG, APP, CAB")
        w.fts_exact.append([mailbox_type_token(k) for k in kinds])
    for _, values in where.get("address-city"):
        w.fts_exact.append(_place_terms("address-city", values, city_token))
    for _, values in where.get("address-postalcode"):
        w.fts_prefix.append(_place_terms("address-postalcode", values, postcode_token))
    for _, values in where.get("_lastUpdated"):
        for v in values:
            sql, ps = _date_clause("{updated}", v)
            w.add(sql, [w.time(p) for p in ps])


@dataclass(frozen=True)
class _Plan:
    """The statement of a page of results: ``sql`` with ``params`` (then ``count + 1`` and
    ``offset``), or, when the full-text match is the only condition, ``index``: the match
    expression and, on PostgreSQL, how to run it (:func:`_page_from_index`)."""

    table: str
    alias: str
    key: str
    cols: str
    sql: str = ""
    params: tuple[Any, ...] = ()
    index: tuple[str, PgPlan | None] | None = None


def _plan(kind: str, params: _Params, dialect: str, freqs: dict[str, float]) -> _Plan:
    """Pure and synchronous: run in a thread for a heavy search."""
    w = _Where(dialect)
    for _, values in params.get("family"):
        w.fts_prefix.append(_word_terms("family", values, family_token))
    for _, values in params.get("given"):
        w.fts_prefix.append(_word_terms("given", values, given_token))
    for _, values in params.get("name"):
        if kind == "Organization":
            w.fts_prefix.append(_word_terms("name", values))
        else:
            terms = _word_terms("name", values, family_token)
            w.fts_prefix.append(terms + _word_terms("name", values, given_token))
    _common(params, w)
    if kind == "Practitioner":
        table, alias, key, cols = "dir_practitioners", "p", "p.idnat", _P_COLS
        _fts_clause(w, PRACTITIONER, key)
        _mailbox_clause(w, params, "practitioner_idnat", key)
        join = ""
    elif kind == "Organization":
        table, alias, key, cols = "dir_organisations", "o", "o.identifier", _O_COLS
        _fts_clause(w, ORGANISATION, key)
        _mailbox_clause(w, params, "organisation_identifier", key)
        join = ""
    else:
        table, alias, key, cols = "dir_activities", "a", "a.practitioner_idnat", _R_COLS
        _fts_clause(w, PRACTITIONER, key)
        _mailbox_clause(w, params, "practitioner_idnat", key)
        join = " JOIN dir_practitioners p ON p.idnat = a.practitioner_idnat"
    for _, values in params.get("identifier"):
        ids = _identifier_values(values)
        column = {"Practitioner": "p.idnat", "Organization": "o.identifier"}.get(kind, "p.idnat")
        w.add(f"{column} IN ({_marks(ids)})", ids)
    if w.fts_only is not None and len(w.sql) == 1 and kind != "PractitionerRole":
        expr = w.fts_only[0]
        pg = expression_plan(expr, freqs) if dialect == "postgresql" else None
        return _Plan(table, alias, key, cols, index=(expr, pg))
    conditions = [c.replace("{updated}", f"{alias}.updated_at") for c in w.sql]
    conditions.insert(0, f"{alias}.active = {'1' if dialect == 'sqlite' else 'true'}")
    sql = (
        f"SELECT {cols} FROM {table} {alias}{join} WHERE {' AND '.join(conditions)}"
        f" ORDER BY {alias}.id LIMIT ? OFFSET ?"
    )
    return _Plan(table, alias, key, cols, sql, tuple(w.params))


def _terms(kind: str, params: _Params) -> int:
    """How many full-text terms and address patterns the search holds (:data:`HEAVY_TERMS`)."""
    total = 0
    for name, entries in params.values.items():
        weight = 2 if name == "name" and kind != "Organization" else 1
        total += weight * sum(len(alternatives) for _, alternatives in entries)
    return total


_HEAVY: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}


async def _heavy_place() -> asyncio.Semaphore:
    """One of the :data:`HEAVY_SEARCHES` places of this process (its event loop), within
    :data:`HEAVY_WAIT` seconds, or a 429."""
    loop = asyncio.get_running_loop()
    places = _HEAVY.get(loop)
    if places is None:
        for other in [old for old in _HEAVY if old.is_closed()]:
            del _HEAVY[other]
        places = _HEAVY[loop] = asyncio.Semaphore(HEAVY_SEARCHES)
    try:
        await asyncio.wait_for(places.acquire(), HEAVY_WAIT)
    except TimeoutError:
        raise FhirError(
            429, "throttled", "too many searches with many values at once: retry later"
        ) from None
    return places


async def _page(db: Database, plan: _Plan, count: int, offset: int) -> list[tuple[Any, ...]]:
    if plan.index is not None:
        return await _page_from_index(db, plan, count, offset)
    return await db.raw_rows(plan.sql, *plan.params, count + 1, offset)


async def search(db: Database, kind: str, query: Sequence[tuple[str, str]], base: str) -> JSON:
    params, count, offset = _parse(query)
    includes = _includes(kind, params)
    freqs = (await lexeme_frequencies(db))[0] if db.dialect == "postgresql" else {}
    if _terms(kind, params) <= HEAVY_TERMS:
        rows = await _page(db, _plan(kind, params, db.dialect, freqs), count, offset)
    else:
        # Many alternatives: the planning (folding, one estimate per prefix) leaves the event
        # loop to a thread, and few such searches run at once (issue 26).
        places = await _heavy_place()
        try:
            plan = await asyncio.to_thread(_plan, kind, params, db.dialect, freqs)
            rows = await _page(db, plan, count, offset)
        finally:
            places.release()
    more = len(rows) > count
    rows = rows[:count]
    entries = []
    if kind == "Practitioner":
        boxes = await _mailboxes(db, "practitioner_idnat", [str(r[0]) for r in rows])
        resources = [practitioner(r, boxes) for r in rows]
    elif kind == "Organization":
        boxes = await _mailboxes(db, "organisation_identifier", [str(r[0]) for r in rows])
        resources = [organization(r, boxes) for r in rows]
    else:
        boxes = await _mailboxes(db, "practitioner_idnat", sorted({str(r[1]) for r in rows}))
        resources = [practitioner_role(r, boxes) for r in rows]
    for resource in resources:
        entries.append(
            {
                "fullUrl": f"{base}/{kind}/{resource['id']}",
                "resource": resource,
                "search": {"mode": "match"},
            }
        )
    for resource in await _included(db, kind, includes, rows):
        entries.append(
            {
                "fullUrl": f"{base}/{resource['resourceType']}/{resource['id']}",
                "resource": resource,
                "search": {"mode": "include"},
            }
        )
    kept = [(k, v) for k, v in query if k not in ("_count", "_offset")]

    def link(relation: str, at: int) -> JSON:
        q = urlencode([*kept, ("_count", str(count)), ("_offset", str(at))])
        return {"relation": relation, "url": f"{base}/{kind}?{q}"}

    links = [link("self", offset)]
    if more and offset + count <= MAX_OFFSET:
        links.append(link("next", offset + count))
    if offset > 0:
        links.append(link("previous", max(0, offset - count)))
    bundle: JSON = {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}
    if not more:
        bundle["total"] = offset + len(resources)
    return bundle


def _includes(kind: str, params: _Params) -> set[str]:
    """The references to include (``practitioner``, ``organization``) asked by ``_include``."""
    wanted: set[str] = set()
    allowed = INCLUDES.get(kind, {})
    for _, values in params.get("_include"):
        for value in values:
            if value == f"{kind}:*" and allowed:
                wanted.update(allowed.values())
            elif value in allowed:
                wanted.add(allowed[value])
            else:
                raise FhirError(400, "not-supported", f"_include={value} is not supported")
    return wanted


async def _included(
    db: Database, kind: str, includes: set[str], rows: Sequence[Sequence[Any]]
) -> list[JSON]:
    """The practitioners and organisations the page's PractitionerRoles refer to, once each."""
    if kind != "PractitionerRole" or not includes or not rows:
        return []
    out: list[JSON] = []
    if "practitioner" in includes:
        idnats = sorted({str(r[1]) for r in rows})
        found = await db.raw_rows(
            f"SELECT {_P_COLS} FROM dir_practitioners p WHERE p.idnat IN ({_marks(idnats)})"
            " ORDER BY p.idnat",
            *idnats,
        )
        boxes = await _mailboxes(db, "practitioner_idnat", idnats)
        out += [practitioner(r, boxes) for r in found]
    if "organization" in includes:
        identifiers = sorted({str(r[2]) for r in rows if r[2]})
        if identifiers:
            found = await db.raw_rows(
                f"SELECT {_O_COLS} FROM dir_organisations o"
                f" WHERE o.identifier IN ({_marks(identifiers)}) ORDER BY o.identifier",
                *identifiers,
            )
            boxes = await _mailboxes(db, "organisation_identifier", identifiers)
            out += [organization(r, boxes) for r in found]
    return out


def capability_statement(base: str) -> JSON:
    params = [
        {"name": n, "type": t}
        for n, t in (
            ("name", "string"),
            ("family", "string"),
            ("given", "string"),
            ("identifier", "token"),
            ("mailbox-mss", "string"),
            ("mailbox-mss-type", "token"),
            ("address-city", "string"),
            ("address-postalcode", "string"),
            ("_lastUpdated", "date"),
        )
    ]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": dt.date.today().isoformat(),
        "kind": "instance",
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "implementation": {"description": "Hygie directory", "url": base},
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {
                        "type": r,
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": params,
                        **({"searchInclude": sorted(INCLUDES[r])} if r in INCLUDES else {}),
                    }
                    for r in RESOURCES
                ],
            }
        ],
    }


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))

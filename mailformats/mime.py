"""The structure of a message, read once (RFC 5322, RFC 2045-2049, RFC 2047): sans-I/O.

The reader both the pipeline (``server.delivery.message``: what every check sees) and IMAP
(ENVELOPE, BODYSTRUCTURE, sections, SEARCH) use, so that what a check accepted is what a mail
reader shows. :func:`analyze` reads a raw RFC 5322 / MIME message once and returns a
:data:`MessageInfo`: plain dicts, lists, ints and strings, so the server can store it
(encrypted) as JSON and serve ``ENVELOPE``, ``BODYSTRUCTURE`` and ``BODY[1.2.MIME]`` later
without reparsing. Byte offsets point into the raw message. Malformed MIME never raises: the
part falls back to text/plain.

A part is a dict with ``type``, ``subtype`` (lower case), ``params`` (``[[name, value], …]``),
``id``, ``description``, ``encoding``, ``size`` (body octets), ``lines`` (text and message
parts), ``md5``, ``disposition`` (``[type, params]``), ``language`` (list), ``location``,
``header_start``, ``body_start``, ``end``; multiparts add ``parts``; message/rfc822 parts add
``message`` = ``{"envelope": …, "body": part}``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from typing import Any

MessageInfo = dict[str, Any]
Part = dict[str, Any]

#: Deepest MIME nesting we descend into; deeper parts are treated as opaque text/plain.
MAX_MIME_DEPTH = 32
#: Most parts in one message; further parts are left out of the structure.
MAX_PARTS = 2000

_HEADER_END_RE = re.compile(rb"\n\r?\n")
# RFC 2045 §5.1: parameter := attribute "=" value ; value := token / quoted-string
_PARAM_RE = re.compile(r';\s*([^\s=;"]+)\s*=\s*("[^"\\]*(?:\\.[^"\\]*)*"|[^;]*)')
_QUOTED_PAIR_RE = re.compile(r"\\(.)")
ENVELOPE_FIELDS = ("date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc")


# --- headers -----------------------------------------------------------------------------------


def header_end(raw: bytes, start: int, end: int) -> int:
    """Offset where the body starts: after the first empty line (RFC 5322 §2.1)."""
    if raw.startswith(b"\r\n", start) and start + 2 <= end:
        return start + 2
    if raw.startswith(b"\n", start) and start + 1 <= end:
        return start + 1
    m = _HEADER_END_RE.search(raw, start, end)
    return end if m is None else m.end()


def split_fields(block: bytes) -> list[tuple[str, bytes]]:
    """Header block → ``[(lower-case name, raw field bytes incl. folding and line end)]``.

    RFC 5322 §2.2: a field starts with its name; a line starting with white space continues the
    field before it (§2.2.3). A first line that starts with white space continues nothing: it is
    a nameless fragment (name ``""``), as it would be a continuation of the trace field that a
    server puts on top, so a message reads the same before and after ``Received:`` is added.
    RFC 5322 §4.5.3 (obsolete syntax): white space between the name and the colon is allowed,
    so ``From : x`` and ``From<TAB>: x`` are read as ``From``.
    """
    fields: list[tuple[str, bytes]] = []
    name = ""
    lines: list[bytes] = []
    for line in block.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t"):
            if not lines:
                name = ""
            lines.append(line)
            continue
        if lines:
            fields.append((name, b"".join(lines)))
        colon = line.find(b":")
        name = line[:colon].strip().decode("ascii", "replace").lower() if colon > 0 else ""
        lines = [line]
    if lines:
        fields.append((name, b"".join(lines)))
    return fields


@dataclass(frozen=True)
class HeaderFields:
    """A message's header section as IMAP reads it (ENVELOPE, ``SEARCH FROM``,
    ``BODY[HEADER.FIELDS]``): the one reading that submission's checks see too (design.md §2
    step 2), so what a check accepted is what a mail reader shows."""

    #: ``(lower-case name, raw field bytes)`` in order, every occurrence kept.
    fields: tuple[tuple[str, bytes], ...]
    #: Offset of the body: the header section with its empty line is ``raw[:body_start]``.
    body_start: int

    def values(self, name: str) -> list[str]:
        """The unfolded value of every ``name`` field, in order (RFC 2047 words as sent)."""
        return [_field_value(field) for n, field in self.fields if n == name]

    def first(self) -> dict[str, str]:
        """Each name's first value: what ENVELOPE and BODYSTRUCTURE are built from."""
        out: dict[str, str] = {}
        for name, field in self.fields:
            if name and name not in out:
                out[name] = _field_value(field)
        return out

    def envelope(self) -> dict[str, Any]:
        """The ENVELOPE IMAP serves for this header (RFC 9051 §7.5.2)."""
        return _envelope(self.first())


def read_header(raw: bytes, start: int = 0, end: int | None = None) -> HeaderFields:
    """The header section of the message (or MIME part) at ``raw[start:end]``."""
    stop = len(raw) if end is None else end
    body_start = header_end(raw, start, stop)
    return HeaderFields(tuple(split_fields(raw[start:body_start])), body_start)


def _field_value(raw_field: bytes) -> str:
    """The unfolded value after the colon, RFC 2047 words left as they are."""
    value = raw_field[raw_field.find(b":") + 1 :]
    value = value.replace(b"\r\n", b"\n").replace(b"\n", b"")
    return value.decode("utf-8", "replace").strip()


def _headers(raw: bytes, start: int, body_start: int) -> dict[str, str]:
    return HeaderFields(tuple(split_fields(raw[start:body_start])), body_start).first()


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return _QUOTED_PAIR_RE.sub(r"\1", value[1:-1])
    return value


def _params(value: str) -> tuple[str, list[list[str]]]:
    """``text/plain; charset="utf-8"`` → (``text/plain``, ``[["charset", "utf-8"]]``)."""
    head = value.partition(";")[0]
    params = [[m.group(1), _unquote(m.group(2))] for m in _PARAM_RE.finditer(value, len(head))]
    return head.strip(), params


def _param(params: list[list[str]], name: str) -> str | None:
    for key, val in params:
        if key.lower() == name:
            return val
    return None


# --- addresses (RFC 5322 §3.4) for ENVELOPE ---------------------------------------------------

_ADDR_TOKEN_RE = re.compile(
    r'"(?:[^"\\]|\\.)*"?|\[[^\]]*\]?|\x01[0-9]+\x01|[<>,:;@.]|[^\s"<>,:;@.()\[\]\x01]+|\s+'
)
#: Where :func:`_mark_comments` left a top-level comment: ``\x01n\x01`` (n its index).
_COMMENT_MARK_RE = re.compile("\x01([0-9]+)\x01")


def _mark_comments(value: str) -> tuple[str, list[str]]:
    """``value`` with each top-level comment (RFC 5322 §3.2.2) replaced by a mark
    ``\x01n\x01`` and the comments' texts: the address parser drops the marks, but a
    mailbox without a display name takes the text of its comment as one (what mail readers
    and Dovecot show for ``user@host (Real Name)``)."""
    out: list[str] = []
    found: list[str] = []
    current: list[str] = []
    depth = 0
    quoted = False
    escape = False
    for ch in value.replace("\x01", " "):
        if escape:
            escape = False
            (current if depth else out).append(ch)
            continue
        if ch == "\\":
            escape = True
            if depth == 0:
                out.append(ch)
            continue
        if quoted:
            if ch == '"':
                quoted = False
            out.append(ch)
        elif ch == "(":
            if depth:
                current.append(ch)
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
            if depth:
                current.append(ch)
            else:
                out.append(f" \x01{len(found)}\x01 ")
                found.append("".join(current).strip())
                current = []
        elif depth:
            current.append(ch)
        else:
            if ch == '"':
                quoted = True
            out.append(ch)
    return "".join(out), found


def comments(value: str) -> list[str]:
    """The text of each top-level comment of a structured field value (RFC 5322 §3.2.2),
    which :func:`parse_addresses` leaves out but some mail readers show as a name."""
    found: list[str] = []
    current: list[str] = []
    depth = 0
    quoted = False
    escape = False
    for ch in value:
        if escape:
            escape = False
            if depth:
                current.append(ch)
            continue
        if ch == "\\":
            escape = True
            continue
        if quoted:
            quoted = ch != '"'
        elif ch == "(":
            if depth:
                current.append(ch)
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
            if depth:
                current.append(ch)
            else:
                found.append("".join(current))
                current = []
        elif depth:
            current.append(ch)
        elif ch == '"':
            quoted = True
    if depth:
        found.append("".join(current))
    return found


def decode_words(text: str | None) -> str:
    """``text`` with its RFC 2047 encoded words decoded, as ``SEARCH`` matches it (RFC 9051
    §6.4.4 SHOULD); left as it is when they do not decode."""
    if not text:
        return ""
    try:
        return str(make_header(decode_header(text)))
    except (HeaderParseError, LookupError, ValueError):
        return text


def parse_addresses(value: str | None) -> list[list[str | None]] | None:
    """An address-list header → ENVELOPE addresses ``[name, adl, mailbox, host]``.

    Groups become ``[None, None, group-name, None]`` … ``[None, None, None, None]``
    (RFC 9051 §7.5.2). Missing parts read ``MISSING_MAILBOX`` / ``MISSING_DOMAIN``.
    """
    if not value:
        return None
    marked, notes = _mark_comments(value)
    tokens = [t for t in _ADDR_TOKEN_RE.findall(marked) if not t.isspace()]
    result: list[list[str | None]] = []
    current: list[str] = []
    angle = 0
    in_group = False
    for tok in tokens:
        if tok == "<":
            angle += 1
        elif tok == ">" and angle:
            angle -= 1
        if angle == 0 and tok == ":" and not in_group and "<" not in current:
            result.append([None, None, _phrase(_plain(current)) or "", None])
            in_group = True
            current = []
        elif angle == 0 and tok == ";" and in_group:
            if current:
                result.append(_mailbox(current, notes))
            result.append([None, None, None, None])
            in_group = False
            current = []
        elif angle == 0 and tok == ",":
            if current:
                result.append(_mailbox(current, notes))
            current = []
        else:
            current.append(tok)
    if current:
        result.append(_mailbox(current, notes))
    if in_group:
        result.append([None, None, None, None])
    return result or None


def _phrase(tokens: list[str]) -> str | None:
    words = [_unquote(t) if t.startswith('"') else t for t in tokens]
    text = ""
    for w in words:
        text += w if (w == "." or text.endswith(".") or not text) else " " + w
    return text or None


def _plain(tokens: list[str]) -> list[str]:
    """Tokens without the comment marks."""
    return [t for t in tokens if not _COMMENT_MARK_RE.fullmatch(t)]


def _mailbox(tokens: list[str], notes: list[str]) -> list[str | None]:
    marks = [notes[int(m.group(1))] for t in tokens if (m := _COMMENT_MARK_RE.fullmatch(t))]
    tokens = _plain(tokens)
    name: str | None = None
    adl: str | None = None
    spec = tokens
    if "<" in tokens:
        i = tokens.index("<")
        name = _phrase(tokens[:i])
        spec = tokens[i + 1 :]
        if ">" in spec:
            spec = spec[: spec.index(">")]
        if ":" in spec:  # obsolete route: <@a,@b:user@host>
            j = spec.index(":")
            adl = "".join(spec[:j]) or None
            spec = spec[j + 1 :]
    if "@" in spec:
        k = len(spec) - 1 - spec[::-1].index("@")
        local = "".join(_unquote(t) if t.startswith('"') else t for t in spec[:k])
        host = "".join(spec[k + 1 :])
    else:
        local = "".join(_unquote(t) if t.startswith('"') else t for t in spec)
        host = ""
    if name is None and "<" not in tokens:
        # ``user@host (Real Name)``: the comment is the only name there is.
        name = next((note for note in marks if note), None)
    return [name, adl, local or "MISSING_MAILBOX", host or "MISSING_DOMAIN"]


def _envelope(headers: dict[str, str]) -> dict[str, Any]:
    # RFC 9051 §7.5.2: absent → NIL, present but empty → the empty string.
    env: dict[str, Any] = {
        "date": headers.get("date"),
        "subject": headers.get("subject"),
        "in-reply-to": headers.get("in-reply-to"),
        "message-id": headers.get("message-id"),
    }
    for name in ("from", "sender", "reply-to", "to", "cc", "bcc"):
        env[name] = parse_addresses(headers.get(name))
    # RFC 3501 §7.4.2: absent or empty Sender / Reply-To take the value of From.
    for name in ("sender", "reply-to"):
        if env[name] is None:
            env[name] = env["from"]
    return env


# --- MIME structure -----------------------------------------------------------------------------


def analyze(raw: bytes) -> MessageInfo:
    """Parse a raw message once; the result is JSON-serialisable."""
    budget = [MAX_PARTS]
    body = _part(raw, 0, len(raw), None, 0, budget)
    headers = _headers(raw, 0, body["body_start"])
    return {
        "size": len(raw),
        "header_length": body["body_start"],
        "envelope": _envelope(headers),
        "body": body,
        # RFC 5256 §2.2 THREAD=REFERENCES reads References (ENVELOPE does not carry it).
        "references": headers.get("references"),
    }


def _count_lines(raw: bytes, start: int, end: int) -> int:
    if start >= end:
        return 0
    lines = raw.count(b"\n", start, end)
    return lines if raw[end - 1] == 0x0A else lines + 1


def _part(
    raw: bytes, start: int, end: int, default_type: str | None, depth: int, budget: list[int]
) -> Part:
    budget[0] -= 1
    body_start = header_end(raw, start, end)
    headers = _headers(raw, start, body_start)
    ctype, params = _params(headers.get("content-type", ""))
    maintype, _, subtype = ctype.lower().partition("/")
    if not ctype:
        maintype, subtype = (default_type or "text/plain").split("/")
        if maintype == "text":
            params = [["charset", "us-ascii"]]
    elif not maintype or not subtype or not _is_token(maintype) or not _is_token(subtype):
        # RFC 2045 §5.2: an invalid Content-Type is treated as text/plain; charset=us-ascii.
        maintype, subtype, params = "text", "plain", [["charset", "us-ascii"]]
    elif maintype == "text" and _param(params, "charset") is None:
        # RFC 2045 §5.2: the default charset of text/* is us-ascii.
        params = [["charset", "us-ascii"], *params]
    encoding = headers.get("content-transfer-encoding", "7bit").strip() or "7bit"
    disposition: list[Any] | None = None
    if "content-disposition" in headers:
        dtype, dparams = _params(headers["content-disposition"])
        if dtype:
            disposition = [dtype, dparams]
    language = headers.get("content-language")
    part: Part = {
        "type": maintype,
        "subtype": subtype,
        "params": params,
        "id": headers.get("content-id") or None,
        "description": headers.get("content-description") or None,
        "encoding": encoding.upper(),
        "size": end - body_start,
        "lines": None,
        "md5": headers.get("content-md5") or None,
        "disposition": disposition,
        "language": [x.strip() for x in language.split(",") if x.strip()] if language else None,
        "location": headers.get("content-location") or None,
        "header_start": start,
        "body_start": body_start,
        "end": end,
    }
    if maintype == "multipart":
        boundary = _param(params, "boundary")
        spans = _split_multipart(raw, body_start, end, boundary) if boundary else []
        if spans and depth < MAX_MIME_DEPTH:
            child_default = "message/rfc822" if subtype == "digest" else "text/plain"
            parts = []
            for a, b in spans:
                if budget[0] <= 0:
                    break
                parts.append(_part(raw, a, b, child_default, depth + 1, budget))
            part["parts"] = parts
            return part
        part.update(type="text", subtype="plain", params=[["charset", "us-ascii"]])
        maintype = "text"
    if maintype == "message" and subtype in ("rfc822", "global") and depth < MAX_MIME_DEPTH:
        inner = _part(raw, body_start, end, None, depth + 1, budget)
        part["message"] = {
            "envelope": _envelope(_headers(raw, body_start, inner["body_start"])),
            "body": inner,
        }
        part["lines"] = _count_lines(raw, body_start, end)
    elif maintype == "message" and subtype in ("rfc822", "global"):
        part.update(type="text", subtype="plain", params=[["charset", "us-ascii"]])
        maintype = "text"
    if maintype == "text":
        part["lines"] = _count_lines(raw, body_start, end)
    return part


_TOKEN_RE = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")


def _is_token(text: str) -> bool:
    return _TOKEN_RE.fullmatch(text) is not None


def _split_multipart(raw: bytes, start: int, end: int, boundary: str) -> list[tuple[int, int]]:
    """RFC 2046 §5.1.1: body parts between ``--boundary`` lines (the CRLF before a delimiter
    belongs to it); an unterminated last part runs to the end."""
    delim = b"--" + boundary.encode("utf-8", "replace")
    if len(delim) > 200:
        return []
    spans: list[tuple[int, int]] = []
    part_start: int | None = None
    pos = start
    while len(spans) < MAX_PARTS:
        i = raw.find(delim, pos, end)
        if i < 0:
            break
        after = i + len(delim)
        line_end = raw.find(b"\n", after, end)
        next_line = end if line_end < 0 else line_end + 1
        if i != start and raw[i - 1] != 0x0A:
            pos = after
            continue
        closing = raw.startswith(b"--", after)
        rest = raw[after + (2 if closing else 0) : next_line]
        if rest.strip(b" \t\r\n"):
            pos = after
            continue
        if part_start is not None:
            part_end = i
            if part_end > part_start and raw[part_end - 1] == 0x0A:
                part_end -= 1
                if part_end > part_start and raw[part_end - 1] == 0x0D:
                    part_end -= 1
            spans.append((part_start, max(part_start, part_end)))
        if closing:
            return spans
        part_start = next_line
        pos = next_line
    if part_start is not None and len(spans) < MAX_PARTS:
        spans.append((part_start, end))
    return spans


def find_part(info: MessageInfo, path: tuple[int, ...]) -> Part | None:
    """The part at ``path`` (``(1, 2)`` for ``1.2``), or ``None`` if there is none."""
    node: Part = info["body"]
    for depth, number in enumerate(path):
        if "parts" in node:
            if not 1 <= number <= len(node["parts"]):
                return None
            node = node["parts"][number - 1]
        elif depth == 0:
            # RFC 9051 §6.4.5: a non-multipart message has part 1, its body.
            if number != 1:
                return None
        elif "message" in node:
            inner: Part = node["message"]["body"]
            if "parts" in inner:
                if not 1 <= number <= len(inner["parts"]):
                    return None
                node = inner["parts"][number - 1]
            elif number == 1:
                node = inner
            else:
                return None
        else:
            return None
    return node


def binary_bytes(raw: bytes, info: MessageInfo, part: tuple[int, ...]) -> bytes | None:
    """RFC 3516 ``BINARY[part]``: the part's body with its transfer encoding removed.

    ``None`` for an unknown encoding (the server answers ``NO [UNKNOWN-CTE]``); ``b""`` for a
    part that does not exist.
    """
    node = find_part(info, part) if part else info["body"]
    if node is None:
        return b""
    if not part:
        return raw
    return decode_body(raw[node["body_start"] : node["end"]], node)


def decode_body(body: bytes, node: Part) -> bytes | None:
    """A part's body without its transfer encoding (None for an unknown encoding)."""
    encoding = node["encoding"]
    if encoding in ("7BIT", "8BIT", "BINARY"):
        return body
    if encoding == "BASE64":
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", body)
        cleaned = cleaned[: len(cleaned) - len(cleaned) % 4 if len(cleaned) % 4 == 1 else None]
        try:
            return base64.b64decode(cleaned + b"=" * (-len(cleaned) % 4))
        except binascii.Error:
            return None
    if encoding == "QUOTED-PRINTABLE":
        # RFC 2045 §6.7 rule 3: white space at the end of an encoded line is padding added
        # by transport, deleted when decoding (binascii keeps it).
        return binascii.a2b_qp(_QP_TRAILING_SPACE_RE.sub(b"", body))
    return None


_QP_TRAILING_SPACE_RE = re.compile(rb"[ \t]+(?=\r?\n|\Z)")


# --- APPEND of literal8 content (RFC 3516 §4.4) ----------------------------------------------


def _leaves(part: Part) -> list[Part]:
    if "parts" in part:
        return [leaf for child in part["parts"] for leaf in _leaves(child)]
    if "message" in part:
        return _leaves(part["message"]["body"])
    return [part]


def seven_bit(raw: bytes) -> bytes:
    """``raw`` with every part sent in the ``binary`` transfer encoding (or holding NUL
    octets) re-encoded in base64, its Content-Transfer-Encoding field changed to match.

    RFC 3516 §4.4: a server that cannot keep binary content as it is may convert it; stored
    this way, ``BODY[n]`` always returns a 7-bit form (RFC 2045 §6) and ``BINARY[n]`` still
    returns the octets the client appended.
    """
    info = analyze(raw)
    todo = [
        leaf
        for leaf in _leaves(info["body"])
        if leaf["encoding"] == "BINARY" or b"\x00" in raw[leaf["body_start"] : leaf["end"]]
    ]
    out = raw
    for leaf in sorted(todo, key=lambda p: p["header_start"], reverse=True):
        body = out[leaf["body_start"] : leaf["end"]]
        if leaf["encoding"] not in ("7BIT", "8BIT", "BINARY"):
            continue  # already encoded (base64 holding NUL after decoding is fine)
        encoded = base64.encodebytes(body).replace(b"\n", b"\r\n")
        if leaf["end"] < len(out):
            encoded = encoded[:-2]  # the CRLF before the next delimiter is the boundary's
        header = out[leaf["header_start"] : leaf["body_start"]]
        fields = split_fields(header)
        kept = [f for name, f in fields if name != "content-transfer-encoding"]
        kept.append(b"Content-Transfer-Encoding: base64\r\n")
        new_header = b"".join(kept) + b"\r\n"
        out = out[: leaf["header_start"]] + new_header + encoded + out[leaf["end"] :]
    return out

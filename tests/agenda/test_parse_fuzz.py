"""Any bytes in a text/calendar part: an iTIP message or an ItipError, never another
exception (the workflow turns ItipError into a clear error mail, style.md)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agenda.itip import ItipError, apply, parse
from tests.agenda.itip_samples import DOCTOR, PATIENT, sample

LINES = sample("thunderbird_request.ics").split(b"\r\n")


def check(data: bytes) -> None:
    try:
        message = parse(data)
    except ItipError:
        return
    apply(message, PATIENT, DOCTOR, {})


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes(data: bytes) -> None:
    check(data)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(LINES), max_size=len(LINES) + 5),
    st.lists(st.tuples(st.integers(0, len(LINES) - 1), st.binary(max_size=30)), max_size=4),
)
def test_mangled_invitations(lines: list[bytes], edits: list[tuple[int, bytes]]) -> None:
    mangled = list(LINES)
    for index, junk in edits:
        mangled[index] = mangled[index][: len(junk)] + junk
    check(b"\r\n".join(mangled))
    check(b"\r\n".join(lines))


@settings(max_examples=500, deadline=None)
@given(st.integers(0, len(LINES) - 1), st.text(max_size=40))
def test_a_property_with_any_value(index: int, value: str) -> None:
    """DTSTART:tomorrow, SEQUENCE:-x, ATTENDEE;PARTSTAT=…: refused cleanly or applied."""
    mangled = list(LINES)
    name = mangled[index].split(b":", 1)[0]
    mangled[index] = name + b":" + value.encode("utf-8", "replace")
    check(b"\r\n".join(mangled))

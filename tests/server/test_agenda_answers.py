"""Whom the agenda workflow answers by itself (REFRESH, DECLINECOUNTER, free/busy): the
envelope sender's own domain only, never a null reverse-path message."""

from __future__ import annotations

import pytest

from server.workflows.agenda import may_answer


@pytest.mark.parametrize(
    ("originator", "envelope", "answered"),
    [
        ("marie@patient.hygie.test", "marie@patient.hygie.test", True),
        ("Dr.Martin@hygie.test", "secretariat@HYGIE.test", True),  # delegated, same domain
        ("victim@third.test", "user@other.test", False),  # a From the relay peer asserts
        ("marie@patient.hygie.test", "<>", False),  # a notice: never answered
        ("marie@patient.hygie.test", "", False),
        ("not-an-address", "user@other.test", False),
    ],
)
def test_may_answer(originator: str, envelope: str, answered: bool) -> None:
    assert may_answer(originator, envelope) is answered

"""The accounts of the end-to-end tests. Tests that count messages own their mailbox."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Account:
    address: str
    password: str


ALICE = Account("alice@hygie.test", "alice-correct-horse-1")  # the sender
BOB = Account("bob@hygie.test", "bob-battery-staple-2")  # smtplib and swaks round trips
CAROL = Account("carol@hygie.test", "carol-eight-bit-3")  # 8-bit and big messages
DAVE = Account("dave@hygie.test", "dave-fetch-store-4")  # FETCH / STORE / EXPUNGE
ERIN = Account("erin@hygie.test", "erin-idle-5")  # IDLE
FRANK = Account("frank@hygie.test", "frank-bad-input-6")  # bad input: counts must not move

EVERYONE = [ALICE, BOB, CAROL, DAVE, ERIN, FRANK]


def users(*accounts: Account) -> dict[str, str]:
    return {a.address: a.password for a in accounts}

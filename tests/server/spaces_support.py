"""Shared pieces of the patient-space tests (issue 11): valid INS, invitation files, a clock
the test moves, and the configuration of a data directory."""

from __future__ import annotations

import datetime as dt
import re
from email import message_from_bytes
from email.message import EmailMessage, Message
from pathlib import Path

from directory.ins import ins_key
from server.config import Config, NotifySection, ServerSection, SpacesSection

HEADER = "ins,oid,birth_name,given_names,birth_date,sex,birthplace,status,email"
CODE = re.compile(r"^ {4}([A-Z0-9]{10})\r?$", re.M)


def ins(n: int) -> str:
    """The n-th valid INS matricule of a series (women born in March 1979 in 51215)."""
    thirteen = f"2790351215{n:03d}" if n < 1000 else f"27903512{n:05d}"
    return thirteen + ins_key(thirteen)


def invite_csv(numbers: range, *, status: str = "QUAL") -> str:
    lines = [HEADER]
    for n in numbers:
        lines.append(f"{ins(n)},1.2.250.1.213.1.4.8,MARTIN,Marie Claire,1979-03-05,F,51215,"
                     f"{status},patient{n}@example.org")  # fmt: skip
    return "\n".join(lines) + "\n"


class Clock:
    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


def config(data_dir: Path, *, smarthost_port: int = 0, interval: int = 3600) -> Config:
    return Config(
        data_dir=data_dir,
        server=ServerSection(domains=("hygie.test", "patient.hygie.test")),
        spaces=SpacesSection(public_url="https://espace.hygie.test"),
        notify=NotifySection(host="127.0.0.1" if smarthost_port else "", port=smarthost_port,
                             security="none", interval_seconds=interval,
                             retry_base_seconds=60, sender="ne-pas-repondre@hygie.test"),
    )  # fmt: skip


def invitation_code(message: Message | EmailMessage | bytes) -> str:
    msg = message_from_bytes(message) if isinstance(message, bytes) else message
    body = msg.get_payload(decode=True)
    assert isinstance(body, bytes)
    found = CODE.search(body.decode())
    assert found, body
    return found.group(1)


class Inbox:
    """An aiosmtpd handler that keeps what it accepts: the smarthost of the tests."""

    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos),  # type: ignore[attr-defined]
                           envelope.content))  # type: ignore[attr-defined]  # fmt: skip
        return "250 2.0.0 queued"

    def to(self, address: str) -> list[bytes]:
        return [content for _, rcpts, content in self.mails if address in rcpts]

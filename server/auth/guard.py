"""Failed-login limits (design.md §4; issue 17 findings 2 and 3; the model is in
docs/security.md, "Login protection").

Every login attempt is counted as a failure *before* its credentials are checked, and the count
is taken back when they turn out right: parallel attempts cannot all pass a check made before
any of them failed. Attempts are counted by **source** (an IPv4 address, or the /64 of an IPv6
address: one host or one site holds a whole /64), by **login name** (as typed, lower case, so an
unknown name is counted like an existing one) and by the pair of both. The rules, checked in
this order, refuse an attempt (``THROTTLED``) or make it wait:

1. pair, per minute: ``max_failures_per_minute`` failures of this name from this source;
2. pair, per day: ``max_failures_per_day`` of them (even from a source where the owner logged
   in before: an attacker on the owner's own network is not told apart from the owner);
3. source, per minute: ``max_failures_per_minute`` failures from this source, whatever the
   names, unless the name logged in from this source in the last ``KNOWN_DAYS`` days (staff
   behind one hospital NAT are not refused because of a colleague's mistyping or a sprayer);
4. account, per day, pacing: once the name has ``max_failures_per_minute`` failures in a day,
   attempts from sources it has not logged in from are spaced, one check at a time per
   ``2^k`` seconds (k grows every ``max_failures_per_minute`` failures, up to
   :data:`MAX_SPACING`); an attempt that would wait more than :data:`MAX_WAIT` is refused;
5. account, per day, budget: past ``max_failures_per_day`` failures of the name, a source that
   has failed on this name today and never logged in to it may not try again today.

A right password from a source that has not failed is never refused by what other sources did
(rules 1-3 and 5 concern the sources that failed); under a distributed attack it may wait its
turn (rule 4), and a source where the owner logged in before skips the wait.

The counts live behind :class:`LoginRecords`, one atomic ``admit`` (read the counts, apply the
pure :func:`decide`, record the attempt) and one ``settle``. :class:`SharedRecords` (what
``hygie serve`` uses) keeps them in the database, so that every worker process and every node
of a cluster counts the same failures, and moving between them resets nothing (issue 20):
failures, the sources a name logged in from, and the pacing of accounts under attack are rows;
an attempt is counted in its own process's memory while its check runs, and written only if it
failed, so a successful login costs one read (and a write once a day per source and name).
Between processes, attempts whose checks run at the same time do not see each other: at most
:data:`CONCURRENT_CHECKS` per source and per name in each process, so a burst is bounded by
that times the number of processes, after which the stored failures count.
:class:`MemoryRecords` keeps them in one process's memory (unit tests, and the in-flight part).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Table, delete, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from storage.db import Database
from storage.models import LoginFailure, LoginPacing, LoginSource

MINUTE = 60.0
DAY = 24 * 3600.0
#: A source where a name logged in successfully stays "known" for it this long.
KNOWN_DAYS = 30
#: The longest spacing between two paced checks of one account (rule 4), seconds.
MAX_SPACING = 60.0
#: The longest a paced attempt is held before its check; longer: refused, try later.
MAX_WAIT = 15.0
#: Credential checks (argon2id) running at once for one source, and for one login name.
CONCURRENT_CHECKS = 2


def source_of(peer: str) -> str:
    """The unit of rate limiting for a client address: IPv4 as is, IPv6 by its /64 (IPv4-mapped
    IPv6 addresses as IPv4); anything else (a Unix socket, "unknown") as given."""
    try:
        ip = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return peer
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


def login_key(name: str) -> str:
    return name.strip().lower()


@dataclass(frozen=True)
class Limits:
    per_minute: int = 10
    per_day: int = 100


@dataclass(frozen=True)
class Counts:
    """What the records say about one attempt, at one instant."""

    pair_minute: int = 0
    pair_day: int = 0
    source_minute: int = 0
    account_day: int = 0
    known: bool = False  # the name logged in from this source in the last KNOWN_DAYS days
    next_slot: float = 0.0  # when the account's next paced check may start (rule 4)


@dataclass(frozen=True)
class Verdict:
    admitted: bool
    rule: str = ""  # the rule that refused or paced the attempt, for the log
    start: float = 0.0  # paced: when the check may start
    next_slot: float | None = None  # paced: the account's next slot after this one


def spacing(failures: int, limits: Limits) -> float:
    """Seconds between two paced checks of an account with ``failures`` failures today."""
    if failures < limits.per_minute:
        return 0.0
    steps = (failures - limits.per_minute) // max(limits.per_minute, 1)
    return min(MAX_SPACING, 2.0 ** min(steps, 16))


def decide(counts: Counts, limits: Limits, now: float, *, has_login: bool, pace: bool) -> Verdict:
    """The rules of the module docstring, as a pure function."""
    if counts.pair_minute >= limits.per_minute:
        return Verdict(False, "pair-minute")
    if counts.pair_day >= limits.per_day:
        return Verdict(False, "pair-day")
    if not counts.known:
        if counts.source_minute >= limits.per_minute:
            return Verdict(False, "source-minute")
        if has_login and counts.account_day >= limits.per_day and counts.pair_day > 0:
            return Verdict(False, "account-day")
        gap = spacing(counts.account_day, limits) if has_login and pace else 0.0
        if gap > 0:
            start = max(now, counts.next_slot)
            if start - now > MAX_WAIT:
                return Verdict(False, "account-pacing")
            return Verdict(True, "account-pacing", start, start + gap)
    return Verdict(True, start=now)


@dataclass(frozen=True)
class Ticket:
    """An admitted attempt, counted as a failure until settled as a success."""

    source: str
    login: str | None
    at: float
    wait: float
    rule: str


class LoginRecords(Protocol):
    """Where the counts live; both calls are atomic with respect to each other."""

    async def admit(
        self, source: str, login: str | None, now: float, judge: Callable[[Counts], Verdict]
    ) -> tuple[Verdict, Ticket | None]: ...

    async def settle(self, ticket: Ticket, ok: bool, login: str | None, now: float) -> None: ...


class MemoryRecords:
    """:class:`LoginRecords` in this process's memory (lost at restart), bounded: past
    ``max_keys`` counters the least recently used are dropped."""

    def __init__(self, max_keys: int = 200_000) -> None:
        self.max_keys = max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._known: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._slots: dict[str, float] = {}

    def _count(self, key: str, window: float, now: float) -> int:
        events = self._events.get(key)
        if events is None:
            return 0
        while events and events[0] <= now - DAY:
            events.popleft()
        if not events:
            del self._events[key]
            return 0
        if window >= DAY:
            return len(events)
        return sum(1 for t in reversed(events) if t > now - window)

    def _add(self, key: str, now: float) -> None:
        events = self._events.get(key)
        if events is None:
            events = self._events[key] = deque()
        events.append(now)
        self._events.move_to_end(key)
        while len(self._events) > self.max_keys:
            self._events.popitem(last=False)

    def _is_known(self, source: str, login: str | None, now: float) -> bool:
        if login is None:
            return False
        seen = self._known.get((source, login))
        return seen is not None and seen > now - KNOWN_DAYS * DAY

    def counts(self, source: str, login: str | None, now: float) -> Counts:
        pair = f"pair:{source}|{login}" if login is not None else None
        account = f"acct:{login}" if login is not None else None
        return Counts(
            pair_minute=self._count(pair, MINUTE, now) if pair else 0,
            pair_day=self._count(pair, DAY, now) if pair else 0,
            source_minute=self._count(f"src:{source}", MINUTE, now),
            account_day=self._count(account, DAY, now) if account else 0,
            known=self._is_known(source, login, now),
            next_slot=self._slots.get(account, 0.0) if account else 0.0,
        )

    async def admit(
        self, source: str, login: str | None, now: float, judge: Callable[[Counts], Verdict]
    ) -> tuple[Verdict, Ticket | None]:
        verdict = judge(self.counts(source, login, now))
        if not verdict.admitted:
            return verdict, None
        return verdict, self.record(source, login, now, verdict)

    def record(self, source: str, login: str | None, now: float, verdict: Verdict) -> Ticket:
        """Count an admitted attempt (as a failure until settled)."""
        src = f"src:{source}"
        pair = f"pair:{source}|{login}" if login is not None else None
        account = f"acct:{login}" if login is not None else None
        for key in (src, pair, account):
            if key is not None:
                self._add(key, now)
        if account is not None and verdict.next_slot is not None:
            self._slots[account] = verdict.next_slot
            for stale in [k for k, t in self._slots.items() if t < now - DAY]:
                del self._slots[stale]
        return Ticket(source, login, now, max(0.0, verdict.start - now), verdict.rule)

    def withdraw(self, ticket: Ticket) -> None:
        """Take the attempt back from the counts."""
        keys = [f"src:{ticket.source}"]
        if ticket.login is not None:
            keys += [f"pair:{ticket.source}|{ticket.login}", f"acct:{ticket.login}"]
        for key in keys:
            events = self._events.get(key)
            if events is not None:
                with contextlib.suppress(ValueError):
                    events.remove(ticket.at)

    async def settle(self, ticket: Ticket, ok: bool, login: str | None, now: float) -> None:
        if not ok:
            return
        self.withdraw(ticket)
        for name in {n for n in (ticket.login, login) if n is not None}:
            self._known[(ticket.source, name)] = now
            self._known.move_to_end((ticket.source, name))
        while len(self._known) > self.max_keys:
            self._known.popitem(last=False)


#: One read for everything :func:`decide` needs from the stored records of one attempt.
_STORED_COUNTS = """
SELECT
  COALESCE(SUM(CASE WHEN source = ? AND login = ? AND at > ? THEN 1 ELSE 0 END), 0),
  COALESCE(SUM(CASE WHEN source = ? AND login = ? THEN 1 ELSE 0 END), 0),
  COALESCE(SUM(CASE WHEN source = ? AND at > ? THEN 1 ELSE 0 END), 0),
  COALESCE(SUM(CASE WHEN login = ? THEN 1 ELSE 0 END), 0),
  (SELECT MAX(seen) FROM login_sources WHERE source = ? AND login = ?),
  (SELECT MAX(next_slot) FROM login_pacing WHERE login = ?)
FROM login_failures WHERE (source = ? OR login = ?) AND at > ?
"""
#: A known source is written again only when its row is older than this.
KNOWN_REFRESH = DAY


FAILURES: Table = LoginFailure.__table__  # type: ignore[assignment]
SOURCES: Table = LoginSource.__table__  # type: ignore[assignment]
PACING: Table = LoginPacing.__table__  # type: ignore[assignment]


def _insert_failure(source: str, login: str | None, at: float) -> Callable[[Connection], None]:
    def write(conn: Connection) -> None:
        conn.execute(insert(FAILURES).values(source=source, login=login, at=at))
        # Failures count for a day: older rows go as new ones come (an indexed range).
        conn.execute(delete(FAILURES).where(FAILURES.c.at < at - DAY))

    return write


def _upsert(table: Table, values: dict[str, Any], column: str) -> Callable[[Connection], None]:
    def write(conn: Connection) -> None:
        ins: Any = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)
        keys = [c.name for c in table.primary_key.columns]
        conn.execute(
            ins.values(**values).on_conflict_do_update(
                index_elements=keys, set_={column: values[column]}
            )
        )

    return write


class SharedRecords:
    """:class:`LoginRecords` in the database, shared by every process and node (see the
    module docstring): the stored failures plus this process's attempts in flight."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.flight = MemoryRecords()
        self._known_written: OrderedDict[tuple[str, str], float] = OrderedDict()

    async def _stored(self, source: str, login: str | None, now: float) -> Counts:
        rows = await self.db.lookup(
            _STORED_COUNTS,
            source, login, now - MINUTE,
            source, login,
            source, now - MINUTE,
            login,
            source, login,
            login,
            source, login, now - DAY,
        )  # fmt: skip
        pm, pd, sm, ad, seen, slot = rows[0] if rows else (0, 0, 0, 0, None, None)
        return Counts(
            pair_minute=int(pm), pair_day=int(pd), source_minute=int(sm), account_day=int(ad),
            known=seen is not None and float(seen) > now - KNOWN_DAYS * DAY,
            next_slot=float(slot or 0.0),
        )  # fmt: skip

    async def admit(
        self, source: str, login: str | None, now: float, judge: Callable[[Counts], Verdict]
    ) -> tuple[Verdict, Ticket | None]:
        stored = await self._stored(source, login, now)
        # From here to the decision nothing awaits: the attempts of this process are counted
        # one after the other.
        local = self.flight.counts(source, login, now)
        counts = Counts(
            pair_minute=stored.pair_minute + local.pair_minute,
            pair_day=stored.pair_day + local.pair_day,
            source_minute=stored.source_minute + local.source_minute,
            account_day=stored.account_day + local.account_day,
            known=stored.known or local.known,
            next_slot=max(stored.next_slot, local.next_slot),
        )
        verdict = judge(counts)
        if not verdict.admitted:
            return verdict, None
        ticket = self.flight.record(source, login, now, verdict)
        if login is not None and verdict.next_slot is not None:
            slot = {"login": login, "next_slot": verdict.next_slot}
            await self.db.writer.run(_upsert(PACING, slot, "next_slot"))
        return verdict, ticket

    async def settle(self, ticket: Ticket, ok: bool, login: str | None, now: float) -> None:
        if not ok:
            try:
                await self.db.writer.run(_insert_failure(ticket.source, ticket.login, ticket.at))
            finally:
                self.flight.withdraw(ticket)
            return
        await self.flight.settle(ticket, True, login, now)
        for name in sorted({n for n in (ticket.login, login) if n is not None}):
            written = self._known_written.get((ticket.source, name))
            if written is not None and written > now - KNOWN_REFRESH:
                continue
            seen = {"source": ticket.source, "login": name, "seen": now}
            await self.db.writer.run(_upsert(SOURCES, seen, "seen"))
            self._known_written[(ticket.source, name)] = now
            while len(self._known_written) > self.flight.max_keys:
                self._known_written.popitem(last=False)


class Throttled(Exception):
    """An attempt refused by a rule (``rule``) before any credential check."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


class _Slots:
    """At most ``size`` holders per key; a key's semaphore lives while it is used."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._held: dict[str, tuple[asyncio.Semaphore, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        sem, users = self._held.get(key, (asyncio.Semaphore(self.size), 0))
        self._held[key] = (sem, users + 1)
        try:
            async with sem:
                yield
        finally:
            sem, users = self._held[key]
            if users == 1:
                del self._held[key]
            else:
                self._held[key] = (sem, users - 1)


class LoginGuard:
    """The rules above around one credential check: ``admit`` before, ``settle`` after."""

    def __init__(
        self,
        limits: Limits,
        records: LoginRecords | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits
        self.records: LoginRecords = records if records is not None else MemoryRecords()
        self.clock = clock
        self._by_source = _Slots(CONCURRENT_CHECKS)
        self._by_login = _Slots(CONCURRENT_CHECKS)

    async def admit(self, peer: str, login: str | None, *, pace: bool = True) -> Ticket:
        """Count the attempt (as a failure until :meth:`settle`) and wait its turn if paced.
        ``pace=False`` for cheap checks (tokens, certificates, codes): nothing to slow down.
        Raises :class:`Throttled`."""
        source = source_of(peer)
        name = login_key(login) if login else None
        now = self.clock()

        def judge(counts: Counts) -> Verdict:
            return decide(counts, self.limits, now, has_login=name is not None, pace=pace)

        verdict, ticket = await self.records.admit(source, name, now, judge)
        if ticket is None:
            raise Throttled(verdict.rule)
        if ticket.wait > 0:
            await asyncio.sleep(ticket.wait)
        return ticket

    async def settle(self, ticket: Ticket, ok: bool, account: str | None = None) -> None:
        """A success takes the attempt back and makes the source known for the name (and for
        ``account``, the address it opened); a failure stays counted."""
        name = login_key(account) if account else None
        await self.records.settle(ticket, ok, name, self.clock())

    @contextlib.asynccontextmanager
    async def checking(self, ticket: Ticket) -> AsyncIterator[None]:
        """Hold while an expensive check runs: at most :data:`CONCURRENT_CHECKS` per source and
        per name (the process-wide argon2id slots come after these)."""
        async with self._by_source.hold(ticket.source):
            if ticket.login is None:
                yield
                return
            async with self._by_login.hold(ticket.login):
                yield

"""The IMAP stress profile of ``bench.imap_stress`` against a real ``hygie serve``: concurrent
sessions from two processes doing LIST, STATUS, SELECT, FETCH of envelopes and structures,
STORE of flags and keywords, EXPUNGE and APPEND, over TLS, in both modes. Every command must
get its own tagged OK (no NO, no BAD, no dropped connection), which makes this an IMAP
correctness test under concurrency as well as a check that the benchmark measures what it says.

Ten clients (the issue 19 profile's count) share four accounts, so sessions fetch, flag and
expunge in the same mailboxes at once: a FETCH of a message that another session expunged
meanwhile gets the data or ``NO [EXPUNGEISSUED]`` (RFC 9051 §7.1, counted apart), never a
dropped connection
(``tests/imap_server/test_concurrency.py`` has the deterministic dialogue). The side-by-side
run against Postfix and Dovecot is ``make bench``, not a test.
"""

from __future__ import annotations

import asyncio

from bench.imap_load import Connection
from bench.imap_stress import run_stress
from bench.reference import STRESS_MAILBOXES, Target, hygie_server, hygie_target

CLIENTS = 10  # the stress profile's clients (issue 19: no protocol error under this load)
USERS = 4  # fewer accounts than clients: mailboxes are shared (see the module docstring)
PER_MAILBOX = 5


async def mailbox_sizes(target: Target) -> dict[str, int]:
    """MESSAGES of each stress mailbox of each account, by STATUS."""
    sizes = {}
    for n in range(1, target.users + 1):
        conn = await Connection.open(target.imap_tls_port, target.client_context())
        try:
            await conn.login(target.address(n), target.password)
            for mailbox in STRESS_MAILBOXES:
                reply = await conn.command(f'STATUS "{mailbox}" (MESSAGES)')
                assert reply.status == "OK", reply.text
                (line,) = reply.lines  # * STATUS "name" (MESSAGES n)
                sizes[f"user{n}/{mailbox}"] = int(line.rstrip(b")").rsplit(b" ", 1)[1])
        finally:
            await conn.close()
    return sizes


def test_stress_profile_gets_a_tagged_ok_for_every_command() -> None:
    with hygie_server(users=USERS, per_mailbox=PER_MAILBOX) as server:
        target = hygie_target(server, USERS)
        stay, login = (
            run_stress(
                target, mode, clients=CLIENTS, per_mailbox=PER_MAILBOX, procs=2, cycles=cycles
            )
            for mode, cycles in (("stay", 4), ("login", 2))
        )  # fmt: skip
        sizes = asyncio.run(mailbox_sizes(target))
        assert server.stop() == 0

    for run, cycles in ((stay, 4), (login, 2)):
        assert run["protocol_errors"] == 0, run["error_samples"]
        assert run["disconnects"] == 0
        # every command sent got its tagged answer, and each answer was counted
        assert run["sent"] == run["answered"] == run["commands"] > 0
        per_command = run["per_command"]
        for name in ("SELECT", "APPEND"):  # in every cycle
            assert per_command[name]["count"] == CLIENTS * cycles, (name, per_command)
        # A listing in every cycle that found messages; deletions when a mailbox outgrew its
        # size (how often depends on the other sessions of the account).
        assert 0 < per_command["FETCH"]["count"] <= CLIENTS * cycles
        assert per_command["EXPUNGE"]["count"] == per_command["STORE \\Deleted"]["count"] > 0
        # The only NO allowed: a message another session expunged meanwhile.
        assert set(run["expected_answers"]) <= {
            f"{name}: NO [EXPUNGEISSUED]" for name in ("FETCH", "FETCH2", "FETCH BODY[]", "STORE")
        }, run["expected_answers"]
        assert run["server_cpu_s"] > 0
    assert login["per_command"]["LOGIN"]["count"] == CLIENTS * 2
    assert login["per_command"]["LOGOUT"]["count"] == CLIENTS * 2
    assert login["logins_per_s"] is not None and login["logins_per_s"] > 0
    assert "LOGIN" not in stay["per_command"]  # logged in before the clock started
    # Each cycle expunges what is above the mailbox's size and appends one message: with
    # sessions of one account racing, a mailbox ends near its seeded size, never empty.
    assert all(0 < n <= PER_MAILBOX + CLIENTS for n in sizes.values()), sizes

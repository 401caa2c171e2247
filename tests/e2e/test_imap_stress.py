"""The IMAP stress profile of ``bench.imap_stress`` against a real ``hygie serve``: concurrent
sessions from two processes doing LIST, STATUS, SELECT, FETCH of envelopes and structures,
STORE of flags and keywords, EXPUNGE and APPEND, over TLS, in both modes. Every command must
get its own tagged OK (no NO, no BAD, no dropped connection), which makes this an IMAP
correctness test under concurrency as well as a check that the benchmark measures what it says.

Each client has its own account (``own_account``), so the outcome does not depend on timing:
with sessions sharing mailboxes, a FETCH of a message that another session expunges between
the FETCH's look-up and its body read drops the session (``FolderError: no such message``
out of ``MailStore.read_body``, seen by ``make bench``'s shared-account runs), where RFC 9051
§7.1 has the server answer ``NO [EXPUNGEISSUED]`` or the data. The side-by-side run against
Postfix and Dovecot is ``make bench``, not a test.
"""

from __future__ import annotations

import asyncio

from bench.imap_load import Connection
from bench.imap_stress import run_stress
from bench.reference import STRESS_MAILBOXES, Target, hygie_server, hygie_target

CLIENTS = 4
USERS = CLIENTS  # one account per client (own_account): see the module docstring
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
                target, mode, clients=CLIENTS, per_mailbox=PER_MAILBOX, procs=2, cycles=cycles,
                own_account=True,
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
        for name in ("SELECT", "FETCH", "FETCH2", "APPEND"):  # in every cycle
            assert per_command[name]["count"] == CLIENTS * cycles, (name, per_command)
        # every cycle finds its mailbox at its size, so deletes one message
        assert per_command["STORE \\Deleted"]["count"] == CLIENTS * cycles
        assert per_command["EXPUNGE"]["count"] == CLIENTS * cycles
        assert run["server_cpu_s"] > 0
    assert login["per_command"]["LOGIN"]["count"] == CLIENTS * 2
    assert login["per_command"]["LOGOUT"]["count"] == CLIENTS * 2
    assert login["logins_per_s"] is not None and login["logins_per_s"] > 0
    assert "LOGIN" not in stay["per_command"]  # logged in before the clock started
    # Each cycle expunges what is above the mailbox's size and appends one message: the
    # mailboxes keep their seeded size.
    assert set(sizes.values()) == {PER_MAILBOX}, sizes

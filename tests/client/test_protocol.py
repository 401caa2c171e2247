"""The protocol layer against a real ``hygie serve``: sign in by password, certificate and
token, over implicit TLS and STARTTLS; send with aiosmtplib; read, flag, move, search, IDLE."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from bench.harness import ServerProcess
from client_tui.compose import Draft, build_message, read_message
from client_tui.credentials import CredentialError
from client_tui.imap import ImapError, sequence_set, tokenize
from client_tui.session import MailSession, find_special
from client_tui.smtp import SubmissionError
from tests.client.conftest import CLAIRE, JEAN, PASSPHRASE, PASSWORD, Setup, account_for


def test_tokenize_fetch_with_literal() -> None:
    data = b"1 FETCH (UID 7 FLAGS (\\Seen) BODY[HEADER.FIELDS (SUBJECT)] {14}\r\n"
    data += b"Subject: x\r\n\r\n)"
    tokens = tokenize(data)
    assert tokens[0] == "1" and tokens[1] == "FETCH"
    items = tokens[2]
    assert isinstance(items, list)
    assert items[:4] == ["UID", "7", "FLAGS", ["\\Seen"]]
    assert items[4] == "BODY[HEADER.FIELDS (SUBJECT)]"
    assert items[5] == b"Subject: x\r\n\r\n"


def test_sequence_set() -> None:
    assert sequence_set([7, 1, 2, 3, 9, 10]) == "1:3,7,9:10"


async def send_plain(server: ServerProcess, sender: str, to: str, subject: str) -> None:
    session = MailSession(account_for(server, sender), await _password(server, sender))
    draft = Draft(sender=sender, to=to, subject=subject, body="Bonjour,\ncompte rendu joint.\n")
    await session.send(build_message(draft))


async def _password(server: ServerProcess, address: str):  # type: ignore[no-untyped-def]
    from client_tui.session import resolve_credentials

    return await resolve_credentials(account_for(server, address), PASSWORD)


async def test_password_login_send_read_flag_move_search(server: ServerProcess) -> None:
    subject = f"Compte rendu {uuid.uuid4().hex[:8]}"
    await send_plain(server, JEAN, CLAIRE, subject)

    _, imap = await MailSession.sign_in(account_for(server, CLAIRE), PASSWORD)
    try:
        folders = await imap.folders()
        names = [f.name for f in folders]
        assert names[0] == "INBOX"
        inbox = folders[0]
        assert inbox.unseen >= 1
        await imap.select("INBOX")
        uids = await imap.search_text(subject)
        assert len(uids) == 1
        [summary] = await imap.summaries(uids)
        assert summary.subject == subject
        assert JEAN in summary.sender
        assert not summary.seen
        raw = await imap.fetch_message(uids[0])
        message = read_message(raw)
        assert "compte rendu joint" in message.text
        [summary] = await imap.summaries(uids)
        assert summary.seen  # BODY[] set \Seen
        await imap.store_flags(uids, "\\Flagged")
        [summary] = await imap.summaries(uids)
        assert summary.flagged
        trash = find_special(folders, "\\Trash", "Trash")
        await imap.move(uids, trash)
        assert await imap.search_text(subject) == []
        await imap.select(trash)
        assert len(await imap.search_text(subject)) == 1
    finally:
        await imap.logout()


async def test_starttls_ports(server: ServerProcess) -> None:
    account = account_for(
        server, CLAIRE, imap_port=server.imap_port, imap_security="starttls",
        smtp_port=server.smtp_port, smtp_security="starttls",
    )  # fmt: skip
    session, imap = await MailSession.sign_in(account, PASSWORD)
    await imap.select("INBOX")
    await imap.logout()
    await session.send(build_message(Draft(sender=CLAIRE, to=JEAN, subject="starttls", body="x")))


async def test_certificate_login(client_setup: Setup) -> None:
    server = client_setup.server
    account = account_for(server, JEAN, auth="certificate", pkcs12=str(client_setup.pkcs12))
    session, imap = await MailSession.sign_in(account, PASSPHRASE)
    assert (await imap.select("INBOX")).name == "INBOX"
    await imap.logout()
    await session.send(build_message(Draft(sender=JEAN, to=CLAIRE, subject="par certificat")))
    with pytest.raises(CredentialError, match="passphrase"):
        await MailSession.sign_in(account, "wrong passphrase")


async def test_token_login(server: ServerProcess) -> None:
    from bench.harness import hygie_command

    command = " ".join([*hygie_command(), "--data", str(server.data_dir), "token", "issue", CLAIRE])
    account = account_for(server, CLAIRE, auth="token", token_command=command)
    session, imap = await MailSession.sign_in(account)
    await imap.select("INBOX")
    await imap.logout()
    await session.send(build_message(Draft(sender=CLAIRE, to=JEAN, subject="par jeton")))

    bad = account_for(server, CLAIRE, auth="token", token_command="echo not-a-jwt")
    with pytest.raises(ImapError, match="login refused"):
        await MailSession.sign_in(bad)


async def test_bad_password_and_refused_recipient(server: ServerProcess) -> None:
    with pytest.raises(ImapError, match="login refused"):
        await MailSession.sign_in(account_for(server, CLAIRE), "wrong-password")
    session = MailSession(account_for(server, JEAN), await _password(server, JEAN))
    with pytest.raises(SubmissionError, match=r"nobody@hygie\.test"):
        await session.send(build_message(Draft(sender=JEAN, to="nobody@hygie.test", subject="x")))


async def test_connection_refused(server: ServerProcess) -> None:
    from bench.harness import free_ports

    [port] = free_ports(1)
    with pytest.raises(ImapError, match="refused"):
        await MailSession.sign_in(account_for(server, CLAIRE, imap_port=port), PASSWORD)


async def test_idle_reports_new_mail(server: ServerProcess) -> None:
    _, imap = await MailSession.sign_in(account_for(server, CLAIRE), PASSWORD)
    selected = await imap.select("INBOX")
    before = selected.exists
    seen: list[object] = []

    async def watch() -> None:
        async for tokens in imap.idle(limit=60):
            seen.append(tokens)
            if len(tokens) >= 2 and tokens[1] == "EXISTS":
                imap.stop_idle()

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.5)
    await send_plain(server, JEAN, CLAIRE, "idle")
    await asyncio.wait_for(watcher, 30)
    assert imap.selected is not None and imap.selected.exists == before + 1
    await imap.select("INBOX")  # the connection is usable after DONE
    await imap.logout()

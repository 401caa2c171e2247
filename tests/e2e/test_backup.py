"""``hygie backup`` while mail is being delivered, ``hygie restore`` on a fresh data directory
(issue 20 item 6): every message acknowledged before the backup started is read back, every
message of the restored mailbox opens, the certificates and the directory are the same, and
keys other than the backed-up ones are refused."""

from __future__ import annotations

import shutil
import threading
import uuid
from pathlib import Path

import pytest

from bench.harness import ServerError, ServerProcess
from storage.crypto import MasterKey
from tests.e2e.people import ALICE, BOB, users
from tests.support.mail import inbox_messages, make_message, send
from tests.support.pgcluster import PgCluster
from tests.support.servers import DATABASES, start_server, stop_server


def _subject(raw: bytes) -> str:
    for line in raw.split(b"\r\n"):
        if line.startswith(b"Subject: "):
            return line[9:].decode()
    return ""


class Sender(threading.Thread):
    """Submits messages one after another, keeping the subjects the server acknowledged."""

    def __init__(self, server: ServerProcess) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.acknowledged: list[str] = []
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                subject = f"during backup {len(self.acknowledged)}"
                message = make_message(ALICE.address, [BOB.address], subject, "pendant\n")
                send(self.server, ALICE.address, ALICE.password, [BOB.address], message)
                self.acknowledged.append(subject)
        except BaseException as exc:  # reported by the test
            self.error = exc


@pytest.mark.parametrize("database", DATABASES)
def test_backup_during_delivery_restores_every_message(
    request: pytest.FixtureRequest, database: str, tmp_path: Path
) -> None:
    server = start_server(request, database, users(ALICE, BOB))
    restored: ServerProcess | None = None
    try:
        extract = tmp_path / "ps.txt"
        server.hygie("directory", "synth", "--kind", "ps-libreacces", "--rows", "40",
                     "--seed", "7", "--out", str(extract))  # fmt: skip
        server.hygie("directory", "import", "ps-libreacces", str(extract))
        before = []
        for n in range(5):
            subject = f"before backup {n}"
            message = make_message(ALICE.address, [BOB.address], subject, f"corps {n}\n")
            send(server, ALICE.address, ALICE.password, [BOB.address], message)
            before.append(subject)
        certificates = server.hygie("pki", "list").stdout
        directory = server.hygie(
            "directory", "search", "--profession", "10", "--limit", "1000"
        ).stdout
        assert directory.strip() and b"no match" not in directory

        sender = Sender(server)
        sender.start()
        while len(sender.acknowledged) < 3 and sender.is_alive():
            threading.Event().wait(0.05)
        acknowledged_before = before + list(sender.acknowledged)
        dest, keys = tmp_path / "backup", tmp_path / "keys"
        out = server.hygie("backup", str(dest), "--keys", str(keys)).stdout.decode()
        sender.stopping.set()
        sender.join(60)
        assert sender.error is None, sender.error
        assert "backup of" in out, out
        # The data half holds no private key; the keys half holds them all.
        assert not list(dest.rglob("*.key"))
        assert (keys / "keys" / "master.key").is_file()
        assert (keys / "tls" / "server.key").is_file()
        stop_server(server)

        # A fresh data directory, and on PostgreSQL a fresh empty database.
        url = None
        if database == "postgresql":
            cluster: PgCluster = request.getfixturevalue("pg_cluster")
            url = cluster.create_database(f"restored_{uuid.uuid4().hex[:12]}")
        restored = ServerProcess(users=users(ALICE, BOB), database_url=url,
                                 env=server.extra_env, base_dir=tmp_path / "restored")  # fmt: skip
        options = ["--database-url", url] if url else []

        # Keys that are not the backup's own are refused, and leave nothing behind.
        wrong = tmp_path / "wrong-keys"
        shutil.copytree(keys, wrong)
        (wrong / "keys" / "master.key").unlink()
        MasterKey.create(wrong / "keys" / "master.key")
        with pytest.raises(ServerError, match="the keys do not open this backup"):
            restored.hygie("restore", str(dest), "--keys", str(wrong), *options)
        assert not any(restored.data_dir.iterdir())
        if url:  # the refused attempt loaded the dump: start again from an empty database
            url = cluster.create_database(f"restored_{uuid.uuid4().hex[:12]}")
            restored.database_url = url
            options = ["--database-url", url]

        done = restored.hygie("restore", str(dest), "--keys", str(keys), *options).stdout
        assert b"restored" in done
        restored._initialised = True  # the restore made the data directory
        restored.start()

        messages = inbox_messages(restored, BOB.address, BOB.password)
        subjects = [_subject(m) for m in messages]
        for subject in acknowledged_before:
            assert subjects.count(subject) == 1, (subject, subjects)
        # Every restored message opens (content keys and blobs in the copy), none is doubled.
        assert len(subjects) == len(set(subjects))
        for raw in messages:
            assert b"pendant" in raw or b"corps" in raw, raw[:300]
        assert restored.hygie("pki", "list").stdout == certificates
        assert (
            restored.hygie("directory", "search", "--profession", "10", "--limit", "1000").stdout
            == directory
        )
        stop_server(restored)
    finally:
        server.close()
        if restored is not None:
            restored.close()

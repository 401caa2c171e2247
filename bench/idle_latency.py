"""IDLE latency (issue 3 item 5): how long after a delivery's 250 one IDLE session sees
``* n EXISTS``. Target: within 50 ms of the commit (the 250 is sent after the commit).

    python -m bench.idle_latency --out bench/results [--messages 50]

Writes ``idle_latency.json``; the figure is also printed.
"""

from __future__ import annotations

import argparse
import json
import smtplib
import socket
import statistics
import time
from pathlib import Path

from bench.harness import ServerProcess

SENDER = ("idle.sender@hygie.test", "sender-password-1")
READER = ("idle.reader@hygie.test", "reader-password-1")
TARGET_MS = 50.0


def _read_until(f: object, tag: bytes) -> None:
    while not f.readline().startswith(tag):  # type: ignore[attr-defined]
        pass


def measure(messages: int) -> dict[str, object]:
    with ServerProcess(users=dict([SENDER, READER])) as server:
        ctx = server.ssl_context()
        raw = socket.create_connection(("127.0.0.1", server.imap_tls_port), timeout=30)
        imap = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        f = imap.makefile("rb")
        f.readline()
        imap.sendall(b"a1 LOGIN %s %s\r\n" % (READER[0].encode(), READER[1].encode()))
        _read_until(f, b"a1 ")
        imap.sendall(b"a2 SELECT INBOX\r\n")
        _read_until(f, b"a2 ")
        imap.sendall(b"a3 IDLE\r\n")
        assert f.readline().startswith(b"+")
        smtp = smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30)
        smtp.starttls(context=ctx)
        smtp.login(*SENDER)
        latencies = []
        for i in range(messages):
            body = f"From: {SENDER[0]}\r\nTo: {READER[0]}\r\nSubject: idle {i}\r\n\r\nx\r\n"
            smtp.sendmail(SENDER[0], [READER[0]], body)
            after_250 = time.perf_counter()
            line = f.readline()
            if b"EXISTS" not in line:
                raise RuntimeError(f"expected EXISTS, got {line!r}")
            latencies.append((time.perf_counter() - after_250) * 1000)
        smtp.quit()
        imap.sendall(b"DONE\r\n")
        imap.close()
    p50 = statistics.median(latencies)
    worst = max(latencies)
    return {
        "scenario": "idle_latency",
        "messages": messages,
        "exists_after_250_ms_p50": round(p50, 2),
        "exists_after_250_ms_max": round(worst, 2),
        "target_ms": TARGET_MS,
        "pass": worst <= TARGET_MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--messages", type=int, default=50)
    args = parser.parse_args()
    result = measure(args.messages)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "idle_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    verdict = "PASS" if result["pass"] else "FAIL"
    print(
        f"IDLE: EXISTS {result['exists_after_250_ms_p50']} ms (p50), "
        f"{result['exists_after_250_ms_max']} ms (max) after the 250; "
        f"target {TARGET_MS} ms: {verdict}"
    )


if __name__ == "__main__":
    main()

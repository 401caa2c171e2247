"""A real TLS handshake between two contexts, over a loopback TCP socket."""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass

GREETING = b"220 hygie.test ready\r\n"
TIMEOUT = 5.0


@dataclass
class Outcome:
    """What each side saw. On success the client read the server's greeting."""

    version: str | None = None
    cipher: str | None = None
    compression: str | None = None
    greeting: bytes = b""
    client_error: BaseException | None = None
    server_error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.client_error is None and self.server_error is None


def handshake(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext, server_hostname: str
) -> Outcome:
    outcome = Outcome()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)
        port = listener.getsockname()[1]

        def serve() -> None:
            try:
                conn, _ = listener.accept()
                conn.settimeout(TIMEOUT)
                with server_context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(GREETING)
            except (OSError, ssl.SSLError) as exc:
                outcome.server_error = exc

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
                client_context.wrap_socket(raw, server_hostname=server_hostname) as tls,
            ):
                outcome.version = tls.version()
                cipher = tls.cipher()
                outcome.cipher = cipher[0] if cipher else None
                outcome.compression = tls.compression()
                while not outcome.greeting.endswith(b"\r\n"):
                    chunk = tls.recv(1024)
                    if not chunk:
                        break
                    outcome.greeting += chunk
        except (OSError, ssl.SSLError) as exc:
            outcome.client_error = exc
        finally:
            server.join(TIMEOUT)
    assert not server.is_alive(), "the server side of the handshake hung"
    return outcome

"""The PKI publication point over plain HTTP (RFC 5280 §4.2.1.13 CRL distribution point,
§4.2.2.1 caIssuers; RFC 6960 OCSP over HTTP, Appendix A: GET with the base64 request in the
path, or POST with ``application/ocsp-request``).

Plain HTTP on purpose: revocation data must be reachable without the TLS it protects, and it
is signed. Revocations made by ``hygie pki revoke`` in another process are seen at once: the
registry is read per request and the CRL file is served as it is on disk.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as dt
from urllib.parse import unquote

import h11
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pki.ca import CertificateAuthority

log = structlog.get_logger("hygie.http")
MAX_BODY = 64 * 1024
#: Write a fresh CRL when the published one expires within this delay.
CRL_REFRESH_MARGIN = dt.timedelta(hours=12)


class PkiPublisher:
    def __init__(self, ca: CertificateAuthority, prefix: str = "/pki") -> None:
        self.ca = ca
        self.prefix = prefix.rstrip("/")

    # -- CRL upkeep ---------------------------------------------------------------------------

    def _fresh(self) -> bool:
        path = self.ca.files.crl_der
        if not path.exists():
            return False
        crl = x509.load_der_x509_crl(path.read_bytes())
        next_update = crl.next_update_utc
        now = dt.datetime.now(dt.UTC)
        return next_update is not None and next_update - now > CRL_REFRESH_MARGIN

    def refresh_crl(self) -> bool:
        """Write a new CRL if there is none or it expires soon; True if one was written.
        Several processes of one machine may ask at once: the CA's lock makes one write it
        and the others find it fresh (one CRL number each, in order)."""
        if self._fresh():
            return False
        with self.ca.lock():
            if self._fresh():
                return False
            self.ca.write_crl()
        log.info("crl_written")
        return True

    async def refresh_crl_now(self) -> None:
        """:meth:`refresh_crl` off the event loop (the leased upkeep of ``hygie serve``)."""
        await asyncio.to_thread(self.refresh_crl)

    async def keep_crl_fresh(self, every_seconds: float = 600.0) -> None:
        while True:
            try:
                await asyncio.to_thread(self.refresh_crl)
            except Exception as exc:  # a disk error must not stop the server; retry later
                log.error("crl_refresh_failed", error=type(exc).__name__)
            await asyncio.sleep(every_seconds)

    # -- requests -----------------------------------------------------------------------------

    async def respond(self, method: bytes, target: str, body: bytes) -> tuple[int, str, bytes]:
        path = target.split("?", 1)[0]
        if not path.startswith(self.prefix + "/"):
            return 404, "text/plain", b"not found\n"
        name = path[len(self.prefix) + 1 :]
        if method == b"GET" and name == "crl/intermediate.crl":
            await asyncio.to_thread(self.refresh_crl)
            data = await asyncio.to_thread(self.ca.files.crl_der.read_bytes)
            return 200, "application/pkix-crl", data
        if method == b"GET" and name == "intermediate-ca.cer":
            der = self.ca.intermediate_certificate.public_bytes(serialization.Encoding.DER)
            return 200, "application/pkix-cert", der
        if method == b"GET" and name == "root-ca.cer":
            der = self.ca.root_certificate.public_bytes(serialization.Encoding.DER)
            return 200, "application/pkix-cert", der
        if name == "ocsp" and method == b"POST":
            return 200, "application/ocsp-response", await self._ocsp(body)
        if name.startswith("ocsp/") and method == b"GET":
            encoded = unquote(name[len("ocsp/") :])
            try:
                request = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=False)
            except (binascii.Error, ValueError):
                request = b""
            return 200, "application/ocsp-response", await self._ocsp(request)
        if name in ("ocsp", "crl/intermediate.crl", "intermediate-ca.cer", "root-ca.cer"):
            return 405, "text/plain", b"method not allowed\n"
        return 404, "text/plain", b"not found\n"

    async def _ocsp(self, request: bytes) -> bytes:
        # A malformed request gets an OCSP MALFORMED_REQUEST response, never an exception.
        return await asyncio.to_thread(self.ca.ocsp_response, request)

    # -- connections --------------------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16 * 1024)
        try:
            while True:
                request: h11.Request | None = None
                body = bytearray()
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        data = await asyncio.wait_for(reader.read(65536), 30)
                        conn.receive_data(data)
                        continue
                    if isinstance(event, h11.Request):
                        request = event
                    elif isinstance(event, h11.Data):
                        body += event.data
                        if len(body) > MAX_BODY:
                            await self._send(writer, conn, 413, "text/plain", b"too large\n")
                            return
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    elif isinstance(event, h11.ConnectionClosed):
                        return
                assert request is not None
                status, ctype, payload = await self.respond(
                    request.method, request.target.decode("ascii", "replace"), bytes(body)
                )
                await self._send(writer, conn, status, ctype, payload)
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except h11.RemoteProtocolError:
            with contextlib.suppress(Exception):
                await self._send(writer, conn, 400, "text/plain", b"bad request\n")
        except (TimeoutError, ConnectionError, h11.LocalProtocolError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        conn: h11.Connection,
        status: int,
        content_type: str,
        payload: bytes,
    ) -> None:
        headers = [
            ("Content-Type", content_type),
            ("Content-Length", str(len(payload))),
            ("Cache-Control", "max-age=60"),
        ]
        writer.write(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
        writer.write(conn.send(h11.Data(data=payload)) or b"")
        writer.write(conn.send(h11.EndOfMessage()) or b"")
        await writer.drain()

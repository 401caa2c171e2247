"""``hygie-client login --totp``: a patient's two-factor sign-in (issue 11 item 3).

Asks for the password and the authenticator app's code, exchanges them at the operator's token
endpoint (``POST https://<host>:8443/espace/token``) for a short token, prints it, and keeps it
in ``$XDG_CACHE_HOME/hygie-client/tokens/<address>.json`` (mode 0600) until it expires. The
account then uses the existing token login with that cache as its token command::

    hygie-client account add moi --address <INS>@patient.example --host mail.example \\
        --auth token --token-command "hygie-client login --cached --account moi"
    hygie-client login --totp --account moi      # once per token lifetime (10 minutes)

``--cached`` prints the cached token if it is still valid for a minute, and fails otherwise
(the interface then shows the command's message: sign in again).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from client_tui.config import Account

DEFAULT_HTTPS_PORT = 8443
MARGIN_SECONDS = 60


class LoginError(Exception):
    """The sign-in failed; the message is the server's or the network's, fit to show."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--totp", action="store_true",
                        help="sign in with password and authenticator code (patients)")  # fmt: skip
    parser.add_argument("--cached", action="store_true",
                        help="print the cached token if still valid (a token command)")  # fmt: skip
    parser.add_argument("--url", default="", help="the operator's HTTPS base "
                        f"(default: https://<host>:{DEFAULT_HTTPS_PORT})")  # fmt: skip
    parser.add_argument("--stdin", action="store_true",
                        help="read the password, then the code, from stdin")  # fmt: skip


def cache_path(address: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hygie-client" / "tokens" / f"{address.lower()}.json"


def cached_token(address: str, now: float | None = None) -> str | None:
    try:
        data = json.loads(cache_path(address).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    when = time.time() if now is None else now
    if not isinstance(data, dict) or float(data.get("expires_at", 0)) < when + MARGIN_SECONDS:
        return None
    token = data.get("access_token")
    return token if isinstance(token, str) and token else None


def store_token(address: str, token: str, expires_in: int) -> Path:
    path = cache_path(address)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"access_token": token, "expires_at": time.time() + expires_in}, out)
    tmp.replace(path)
    return path


def request_token(url: str, address: str, password: str, code: str,
                  ca_file: Path | None) -> tuple[str, int]:  # fmt: skip
    """(token, lifetime in seconds) from the token endpoint at ``url`` (the HTTPS base)."""
    if not url.startswith("https://"):
        raise LoginError("the token endpoint must be https://")
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    body = json.dumps({"address": address, "password": password, "code": code}).encode()
    request = urllib.request.Request(  # noqa: S310 (https only, checked above)
        url.rstrip("/") + "/espace/token", data=body, method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:  # noqa: S310
            answer = json.loads(response.read(64 * 1024))
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read(4096)).get("error_description", "")
        except ValueError:
            detail = ""
        raise LoginError(f"sign-in refused ({exc.code}): {detail or exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise LoginError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None
    token = answer.get("access_token") if isinstance(answer, dict) else None
    if not isinstance(token, str) or not token:
        raise LoginError("the server answered without a token")
    return token, int(answer.get("expires_in", 300))


def run(args: argparse.Namespace, account: Account) -> int:
    """The ``login`` subcommand: 0 and the token on stdout, or raises :class:`LoginError`."""
    if args.cached:
        token = cached_token(account.address)
        if token is None:
            raise LoginError(f"no valid token for {account.address}: run "
                             f"`hygie-client login --totp --account {account.name}`")  # fmt: skip
        print(token)
        return 0
    if not args.totp:
        raise LoginError("say --totp (password and authenticator code) or --cached")
    if args.stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
        code = sys.stdin.readline().strip()
    else:
        password = getpass.getpass(f"password for {account.address}: ")
        code = input("code from your authenticator app: ").strip()
    url = args.url or f"https://{account.host}:{DEFAULT_HTTPS_PORT}"
    token, lifetime = request_token(url, account.login or account.address, password, code,
                                    account.ca_path)  # fmt: skip
    store_token(account.address, token, lifetime)
    print(token)
    return 0

"""Recipients from the health directory: the operator's FHIR R4 API (``GET
{base}/Practitioner?name=…``, the ANS "Annuaire Santé" shape), read-only. No Textual import.

A search text ``"dupont"`` matches names by word prefix; ``"dupont, lyon"`` adds the town
(``address-city``). Each practitioner gives one :class:`Correspondent` per MSSanté mailbox in
``telecom`` (liste-rouge boxes never appear there)."""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

# The ANS code system of ordinal specialties (TRE_R38); its display is what the user reads.
SPECIALTY_SYSTEM = "TRE_R38-SpecialiteOrdinale"


class DirectoryError(Exception):
    """The directory could not be asked; the message is for the user."""


@dataclass(frozen=True)
class Correspondent:
    name: str
    address: str
    specialty: str = ""

    @property
    def recipient(self) -> str:
        """What goes in the To field."""
        return f"{self.name} <{self.address}>" if self.name else self.address

    @property
    def label(self) -> str:
        return f"{self.name} — {self.specialty}" if self.specialty else self.name


def _name(resource: dict[str, Any]) -> str:
    """Family name first, as the directory lists people (and as users type them)."""
    for name in resource.get("name") or []:
        parts = [name.get("family", ""), *name.get("given", [])]
        text = " ".join(p for p in parts if p)
        if text:
            return text
    return ""


def _specialty(resource: dict[str, Any]) -> str:
    for qualification in resource.get("qualification") or []:
        for coding in (qualification.get("code") or {}).get("coding") or []:
            if SPECIALTY_SYSTEM in str(coding.get("system", "")) and coding.get("display"):
                return str(coding["display"])
    return ""


def parse_practitioners(bundle: dict[str, Any]) -> list[Correspondent]:
    """Correspondents from a searchset Bundle of Practitioner resources."""
    found: list[Correspondent] = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") != "Practitioner" or resource.get("active") is False:
            continue
        boxes = [t for t in resource.get("telecom") or [] if t.get("system") == "email"]
        boxes.sort(key=lambda t: t.get("rank", 99))  # rank 1 is the preferred box
        for box in boxes:
            if box.get("value"):
                found.append(Correspondent(_name(resource), str(box["value"]),
                                           _specialty(resource)))  # fmt: skip
    return found


OID_IDNAT_PS = "urn:oid:1.2.250.1.71.4.2.1"


@dataclass(frozen=True)
class Practitioner:
    """The directory's entry for one mailbox: the names and the IdNat (national identifier)."""

    given: str
    family: str
    idnat: str


def mailbox_url(base_url: str, address: str) -> str:
    query = urllib.parse.urlencode({"mailbox-mss:exact": address, "_count": "2"})
    return f"{base_url.rstrip('/')}/Practitioner?{query}"


def parse_owner(bundle: dict[str, Any], address: str) -> Practitioner | None:
    """The one active practitioner whose MSSanté mailboxes include ``address``; ``None``
    when there is none or more than one (never a guess)."""
    found: list[Practitioner] = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") != "Practitioner" or resource.get("active") is False:
            continue
        boxes = {str(t.get("value", "")).lower() for t in resource.get("telecom") or []
                 if t.get("system") == "email"}  # fmt: skip
        idnat = next((str(i["value"]) for i in resource.get("identifier") or []
                      if i.get("system") == OID_IDNAT_PS and i.get("value")), "")  # fmt: skip
        names = resource.get("name") or [{}]
        if address.lower() in boxes and idnat:
            given = " ".join(names[0].get("given") or [])
            found.append(Practitioner(given, str(names[0].get("family", "")), idnat))
    return found[0] if len(found) == 1 else None


async def owner_of(
    base_url: str, address: str, context: ssl.SSLContext, wait: float = 10.0
) -> Practitioner | None:
    """Who the directory says holds ``address`` (in a thread: urllib blocks)."""
    bundle = await asyncio.to_thread(_get, mailbox_url(base_url, address), context, wait)
    return parse_owner(bundle, address)


def search_url(base_url: str, text: str, count: int = 10) -> str:
    name, _, town = (part.strip() for part in text.partition(","))
    params = {"name": name, "_count": str(count)}
    if town:
        params["address-city"] = town
    return f"{base_url.rstrip('/')}/Practitioner?{urllib.parse.urlencode(params)}"


def _get(url: str, context: ssl.SSLContext, timeout: float) -> dict[str, Any]:
    # https only (checked here), so urllib's file: and custom schemes cannot be reached.
    if not url.startswith("https://"):
        raise DirectoryError("the directory URL must be https://")
    request = urllib.request.Request(url, headers={"Accept": "application/fhir+json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, context=context, timeout=timeout) as response:  # noqa: S310
            document = json.loads(response.read(2_000_000))
    except urllib.error.HTTPError as exc:
        raise DirectoryError(f"directory answered {exc.code}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DirectoryError(f"directory unreachable: {exc}") from exc
    if not isinstance(document, dict):
        raise DirectoryError("directory answered something other than a Bundle")
    return document


async def search_directory(
    base_url: str, text: str, context: ssl.SSLContext, wait: float = 10.0
) -> list[Correspondent]:
    """Practitioners matching ``text`` (in a thread: urllib blocks)."""
    bundle = await asyncio.to_thread(_get, search_url(base_url, text), context, wait)
    return parse_practitioners(bundle)

"""Manifests for the catalogue tests: a good one, and ways to spoil it."""

from __future__ import annotations

import json
from typing import Any

from catalogue.criteria import CRITERIA

SIRET = "73282932000074"  # Luhn-valid
OTHER_SIRET = "55208131766522"  # Luhn-valid, another editor


def good(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "manifestVersion": 1,
        "id": "fr.exemple.suivi-diabete",
        "name": "Suivi Diabète",
        "version": "1.0.0",
        "editor": {"name": "Exemple Santé SAS", "siret": SIRET},
        "description": "Carnet de glycémie, rappels et partage avec l'équipe de soins.\n"
        "Glycémie < 1,26 g/L à jeun : objectif.",
        "categories": ["suivi de pathologie", "prévention"],
        "serviceUrl": "https://suivi-diabete.exemple.fr/",
        "mailbox": "suivi-diabete@hygie.test",
        "certificate": "0",
        "scopes": ["messages", "dossier-read", "dossier-write", "agenda-write"],
        "criteria": {code: f"Preuve pour {code} : audit 2026, rapport joint." for code in CRITERIA},
    }
    document.update(changes)
    return document


def encoded(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode()

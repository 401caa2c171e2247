"""Text folding shared by the import and the search: no accents, lower case, words only."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_NON_WORD = re.compile(r"[^a-z0-9]+")
#: Longest word kept (longer ones are cut): PostgreSQL's lexemes hold at most 2,047 bytes,
#: and no name, label or town comes near this.
MAX_WORD = 200
_LONG_WORD = re.compile(rf"([a-z0-9]{{{MAX_WORD}}})[a-z0-9]+")


def _cut(words: str) -> str:
    return _LONG_WORD.sub(r"\1", words) if len(words) > MAX_WORD else words


@lru_cache(maxsize=1 << 16)
def fold(text: str) -> str:
    """``"Hélène D'ARCY-Noël"`` → ``"helene d arcy noel"``."""
    if text.isascii():
        return _cut(_NON_WORD.sub(" ", text.lower()).strip())
    decomposed = unicodedata.normalize("NFKD", text.replace("œ", "oe").replace("Œ", "OE"))
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _cut(_NON_WORD.sub(" ", plain.lower()).strip())


@lru_cache(maxsize=1 << 14)
def squash(text: str) -> str:
    """One token for a multi-word value (a town): ``"Saint-Étienne"`` → ``"saintetienne"``."""
    return _cut(fold(text).replace(" ", ""))


# Filter tokens: words no name or label contains, so a filter is one more full-text term.
PRACTITIONER = "qqpp"
ORGANISATION = "qqorg"


def profession_token(code: str) -> str:
    return f"qqprof{squash(code)}"


def specialty_token(code: str) -> str:
    return f"qqsf{squash(code)}"


def city_token(city: str) -> str:
    return f"qqv{squash(city)}"


def postcode_token(postcode: str) -> str:
    return f"qqcp{squash(postcode)}"


def department_token(code: str) -> str:
    """The département of a postcode: 2 characters (``69``), 3 overseas (``971``)."""
    code = squash(code)
    return f"qqdep{code[:3] if code.startswith('97') else code[:2]}"


def mailbox_type_token(kind: str) -> str:
    return f"qqbal{squash(kind)}"


def family_token(family: str) -> str:
    return f"qqf{squash(family)}"


def given_token(given: str) -> str:
    return f"qqg{squash(given)}"

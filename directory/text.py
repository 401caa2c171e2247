"""Text folding shared by the import and the search: no accents, lower case, words only.

Letters of other scripts (Cyrillic, Greek, Arabic, CJK …) and Latin letters that carry no
combining accent (``ß``, ``Ł``, ``Ø``, ``Æ``) are transliterated to ASCII (``anyascii``), so a
name typed as it is written abroad still folds to searchable words: ``"Иванов"`` →
``"ivanov"``, as the RPPS spells it (docs/decisions.md, issue 26).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from anyascii import anyascii

_NON_WORD = re.compile(r"[^a-z0-9]+")
#: Longest word kept (longer ones are cut): PostgreSQL's lexemes hold at most 2,047 bytes,
#: and no name, label or town comes near this.
MAX_WORD = 200
_LONG_WORD = re.compile(rf"([a-z0-9]{{{MAX_WORD}}})[a-z0-9]+")


def _cut(words: str) -> str:
    return _LONG_WORD.sub(r"\1", words) if len(words) > MAX_WORD else words


#: Only values this short are kept in the caches below: the words of an import repeat (towns,
#: labels, common names) and are short, whereas a search value is whatever a client sends;
#: keyed by long values, the caches would hold up to 65,536 of them (issue 26: a 60 KB value
#: per request grew the server by 185 MB in 11 s). At most 65,536 + 16,384 entries of at
#: most 64 characters each: a few tens of MB whatever is sent.
CACHED_LENGTH = 64


def fold(text: str) -> str:
    """``"Hélène D'ARCY-Noël"`` → ``"helene d arcy noel"``; ``"Иванов"`` → ``"ivanov"``."""
    return _fold_cached(text) if len(text) <= CACHED_LENGTH else _fold(text)


def squash(text: str) -> str:
    """One token for a multi-word value (a town): ``"Saint-Étienne"`` → ``"saintetienne"``."""
    return _squash_cached(text) if len(text) <= CACHED_LENGTH else _squash(text)


def _fold(text: str) -> str:
    if text.isascii():
        return _cut(_NON_WORD.sub(" ", text.lower()).strip())
    decomposed = unicodedata.normalize("NFKD", text.replace("œ", "oe").replace("Œ", "OE"))
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    if not plain.isascii():
        plain = anyascii(plain)
    return _cut(_NON_WORD.sub(" ", plain.lower()).strip())


def _squash(text: str) -> str:
    return _cut(fold(text).replace(" ", ""))


_fold_cached = lru_cache(maxsize=1 << 16)(_fold)
_squash_cached = lru_cache(maxsize=1 << 14)(_squash)


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

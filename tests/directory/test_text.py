"""Text folding (directory/text.py): other scripts fold to searchable words, and a long value
is folded without entering the caches (issue 26: keyed by raw search values, they grew the
server by 185 MB in 11 s)."""

from __future__ import annotations

from directory import text
from directory.text import CACHED_LENGTH, fold, squash


def test_other_scripts_and_unaccented_latin_letters_fold_to_words() -> None:
    assert fold("Hélène D'ARCY-Noël") == "helene d arcy noel"
    assert fold("Иванов Иван") == "ivanov ivan"
    assert fold("ΠΑΠΑΔΟΠΟΥΛΟΣ") == fold("Παπαδόπουλος") == "papadopoylos"
    assert fold("Łódź Straße Øster") == "lodz strasse oster"
    assert squash("Санкт-Петербург") == "sanktpeterburg"
    assert fold("'") == "" and fold("²") == "2"


def test_only_short_values_are_cached() -> None:
    text._fold_cached.cache_clear()
    text._squash_cached.cache_clear()
    for i in range(1000):
        value = f"{i:04d}" + "x" * CACHED_LENGTH
        assert fold(value) == value[:200]  # one word, cut at MAX_WORD
        squash(value)
    assert text._fold_cached.cache_info().currsize == 0
    assert text._squash_cached.cache_info().currsize == 0
    fold("dupont")
    assert text._fold_cached.cache_info().currsize == 1

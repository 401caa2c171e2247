"""One search interface over SQLite FTS5 and PostgreSQL full text (issue 5 item 4): word
prefixes, accents and case ignored, combined with profession, specialty, town, postcode and
mailbox type; liste-rouge mailboxes add nothing."""

from __future__ import annotations

import pytest

from directory.extracts import MSSANTE, PS_LIBREACCES
from directory.load import import_extract
from directory.local import DirectoryError, set_mailbox
from directory.search import Query, SearchError, search
from storage.db import Database
from tests.directory.conftest import DUPONT, MARTIN, MSS_EDGE, PS_EDGE


@pytest.fixture
async def loaded(migrated: str, db: Database) -> Database:
    await import_extract(migrated, PS_LIBREACCES, PS_EDGE)
    await import_extract(migrated, MSSANTE, MSS_EDGE)
    return db


async def refs(db: Database, **query: object) -> list[str]:
    """The refs found, sorted (results come in index order, which a re-import changes)."""
    return sorted(h.ref for h in await search(db, Query(**query)))  # type: ignore[arg-type]


async def test_words_are_accent_and_case_insensitive_prefixes(loaded: Database) -> None:
    assert await refs(loaded, text="dupont cardio lyon") == [DUPONT]
    assert await refs(loaded, text="HÉLÈNE") == [DUPONT]
    assert await refs(loaded, text="helene dup") == [DUPONT]
    assert await refs(loaded, text="lévêque") == ["0691234567"]
    assert await refs(loaded, text="eric pneumo paris") == [MARTIN]
    assert await refs(loaded, text="dupont paris") == []


async def test_filters_combine_with_words(loaded: Database) -> None:
    assert await refs(loaded, text="", profession="10") == [DUPONT, MARTIN]
    assert await refs(loaded, profession="60") == ["0691234567"]
    assert await refs(loaded, specialty="SM41") == [MARTIN]
    assert await refs(loaded, city="Villeurbanne") == ["312345678900017", DUPONT]
    assert await refs(loaded, postcode="69", kind="P") == [DUPONT]
    assert await refs(loaded, postcode="750") == ["398765432100019", MARTIN]
    assert await refs(loaded, mailbox_type="ORG") == ["1690000001"]
    assert await refs(loaded, text="dupont", mailbox_type="PER") == [DUPONT]
    assert await refs(loaded, text="martin", mailbox_type="PER") == []


async def test_hits_carry_names_places_and_public_mailboxes(loaded: Database) -> None:
    await set_mailbox(loaded, "h.dupont.prive@hygie.test", "PER", practitioner_idnat=DUPONT,
                      liste_rouge=True)  # fmt: skip
    (hit,) = await search(loaded, Query(text="dupont"))
    assert hit.name == "Docteur Hélène DUPONT"
    assert hit.profession == "Médecin"
    assert hit.specialty == "Cardiologie et maladies vasculaires"
    assert set(hit.places) == {"69003 LYON", "69100 VILLEURBANNE"}
    assert hit.mailboxes == [("helene.dupont@medecin.mssante.fr", "PER")]


async def test_a_local_mailbox_is_searchable_at_once(loaded: Database) -> None:
    assert await refs(loaded, text="martin", mailbox_type="CAB") == []
    await set_mailbox(loaded, "cabinet.martin@hygie.test", "CAB", practitioner_idnat=MARTIN)
    assert await refs(loaded, text="martin", mailbox_type="CAB") == [MARTIN]
    with pytest.raises(DirectoryError, match="type cannot change"):
        await set_mailbox(loaded, "cabinet.martin@hygie.test", "PER", practitioner_idnat=MARTIN)
    await set_mailbox(loaded, "cabinet.martin@hygie.test", "CAB", practitioner_idnat=MARTIN,
                      liste_rouge=True)  # fmt: skip
    assert await refs(loaded, text="martin", mailbox_type="CAB") == []


async def test_paging_and_empty_queries(loaded: Database) -> None:
    everyone = [h.ref for h in await search(loaded, Query(profession="10"))]
    assert len(everyone) == 2
    first = await search(loaded, Query(profession="10", limit=1))
    second = await search(loaded, Query(profession="10", limit=1, offset=1))
    assert [first[0].ref, second[0].ref] == everyone
    with pytest.raises(SearchError):
        await search(loaded, Query(text="a"))
    with pytest.raises(SearchError):
        await search(loaded, Query(text="  "))

"""One search interface over SQLite FTS5 and PostgreSQL full text (issue 5 item 4): word
prefixes, accents and case ignored, combined with profession, specialty, town, postcode and
mailbox type; liste-rouge mailboxes add nothing."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import make_url

from directory import fhir, synth
from directory.extracts import MSSANTE, PS_HEADER, PS_LIBREACCES
from directory.load import import_extract
from directory.local import DirectoryError, set_mailbox
from directory.search import (
    PgPlan,
    Query,
    SearchError,
    changed_statements,
    expression_plan,
    page_keys,
    pg_plan,
    refresh_statements,
    search,
)
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


async def test_mailbox_substring_index_follows_local_changes(loaded: Database) -> None:
    """The trigram index a first import built in bulk keeps up with later writes (its
    trigger is back on SQLite; pg_trgm's GIN index on PostgreSQL)."""

    async def contains(value: str) -> list[str]:
        status, bundle = await fhir.handle(
            loaded, "GET", "Practitioner", [("mailbox-mss:contains", value)], "https://h/fhir"
        )
        assert status == 200
        return [e["resource"]["id"] for e in bundle.get("entry", [])]

    assert await contains("binet.mar") == []
    await set_mailbox(loaded, "cabinet.martin@hygie.test", "CAB", practitioner_idnat=MARTIN)
    assert await contains("binet.mar") == [MARTIN]
    assert await contains("BINET.MAR") == [MARTIN]
    if loaded.dialect == "sqlite":  # the bulk settings of the FTS5 tables are undone
        for table in ("dir_search_fts", "dir_mailboxes_trgm"):
            sql = f"SELECT k, v FROM {table}_config"  # noqa: S608 (names above)
            config = dict(await loaded.raw_rows(sql))
            assert config.get("automerge", 4) == 4 and config.get("crisismerge", 16) == 16


def test_postgresql_plan_from_lexeme_frequencies() -> None:
    freqs = {"le": 0.06, "lea": 0.01, "qqpp": 0.7, "qqprof10": 0.25, "qqvlyon": 0.01,
             "cardiologie": 0.016, "martin": 0.02}  # fmt: skip
    documents = 2_000_000
    # A frequent word alone: matches are dense, the table is read in order up to the page.
    alone = pg_plan([("exact", ["le", "lea"])], [], freqs, documents)
    assert alone == PgPlan("(le | lea)", "", True)
    # Single words go to the index (GIN intersects them lazily); a frequent group of
    # alternatives is checked on the rows the selective terms found.
    mixed = pg_plan(
        [("exact", ["le", "lea"]), ("exact", ["cardiologie"])], ["qqvlyon"], freqs, documents
    )
    assert mixed == PgPlan("qqvlyon & cardiologie", "(le | lea)", False)
    # … unless those rows would be too many to check one by one.
    broad = pg_plan([("exact", ["le", "lea"])], ["qqprof10"], freqs, documents)
    assert broad.indexed == "qqprof10 & (le | lea)" and broad.checked == ""
    # A correlated rare combination is sparse: never a sequential scan; a frequent single
    # word is checked on the few rows the others find (400 expected) rather than read whole.
    rare = pg_plan([("exact", ["martin"])], ["qqprof10", "qqvlyon"], freqs, documents)
    assert rare == PgPlan("qqvlyon & martin", "qqprof10", False)
    # … but indexed when they should be many (40,000 expected).
    many = pg_plan([("exact", ["martin"])], ["qqprof10"], freqs, documents)
    assert many == PgPlan("qqprof10 & martin", "", False)
    # Unknown words are rare; without statistics everything is indexed.
    assert pg_plan([("prefix", ["zyx"])], [], {}, 0) == PgPlan("zyx:*", "", False)


async def test_whole_words_rank_before_prefixes(
    migrated: str, db: Database, tmp_path: Path
) -> None:
    """Two tiers: every typed word whole first (MARTIN before MARTINEAU), then prefixes;
    paging runs across the tiers without repeating or losing anyone."""
    families = ["MARTINEAU", "MARTINEZ", "MARTIN", "MARTINET", "MARTIN"]
    lines = ["|".join(PS_HEADER) + "|"]
    for n, family in enumerate(families):
        fields = {
            "Type d'identifiant PP": "8",
            "Identifiant PP": synth.rpps(n),
            "Identification nationale PP": "8" + synth.rpps(n),
            "Nom d'exercice": family,
            "Prénom d'exercice": "Paul",
            "Code profession": "10",
        }
        lines.append("|".join(fields.get(h, "") for h in PS_HEADER) + "|")
    path = tmp_path / "PS_LibreAcces_Personne_activite_rank.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    await import_extract(migrated, PS_LIBREACCES, path)
    family = {"8" + synth.rpps(n): f for n, f in enumerate(families)}
    found = [family[h.ref] for h in await search(db, Query(text="martin paul"))]
    assert found[:2] == ["MARTIN", "MARTIN"] and sorted(found[2:]) == sorted(
        families[:2] + families[3:4]
    )
    pages = []
    for offset in range(0, 5, 2):
        pages += [h.ref for h in await search(db, Query(text="martin", limit=2, offset=offset))]
    assert [family[r] for r in pages][:2] == ["MARTIN", "MARTIN"]
    assert sorted(pages) == sorted(family)


def _ps_file(path: Path, families: list[str]) -> Path:
    lines = ["|".join(PS_HEADER) + "|"]
    for n, family in enumerate(families):
        fields = {
            "Type d'identifiant PP": "8",
            "Identifiant PP": synth.rpps(n),
            "Identification nationale PP": "8" + synth.rpps(n),
            "Nom d'exercice": family,
            "Prénom d'exercice": "Paul",
            "Code profession": "10",
        }
        lines.append("|".join(fields.get(h, "") for h in PS_HEADER) + "|")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_cached_word_expansions_follow_each_import(
    migrated: str, db: Database, tmp_path: Path
) -> None:
    """A typed word's expansion through the vocabulary is kept in-process; a later import
    that adds a word it starts is seen by the next search (the cache is checked against the
    imports, on PostgreSQL inside the search's own statement)."""
    await import_extract(migrated, PS_LIBREACCES, _ps_file(tmp_path / "PS_a.txt", ["MARTINEAU"]))
    assert [h.name for h in await search(db, Query(text="martin"))] == ["Paul MARTINEAU"]
    assert [h.name for h in await search(db, Query(text="martin"))] == ["Paul MARTINEAU"]
    await import_extract(
        migrated, PS_LIBREACCES, _ps_file(tmp_path / "PS_b.txt", ["MARTINEAU", "MARTINEZ"])
    )
    found = sorted(h.name for h in await search(db, Query(text="martin")))
    assert found == ["Paul MARTINEAU", "Paul MARTINEZ"]


async def test_refresh_of_many_documents_finds_the_same(migrated: str, loaded: Database) -> None:
    """The path a large MSSanté re-import takes (many owners changed: their documents
    refreshed; on SQLite the FTS5 index rebuilt once) gives the same answers."""
    before = await refs(loaded, text="dupont cardio lyon")
    statements = changed_statements(loaded.dialect) + refresh_statements(
        loaded.dialect, reindex=True
    )
    if loaded.dialect == "sqlite":
        conn = sqlite3.connect(migrated.split("///", 1)[1], isolation_level=None)
        try:
            for statement in statements:
                conn.execute(statement, {"since": "2000-01-01", "gen": 0})
            assert conn.execute("SELECT count(*) FROM dir_refresh").fetchone()[0] > 0
        finally:
            conn.close()
    else:
        pg = await asyncpg.connect(
            make_url(migrated).set(drivername="postgresql").render_as_string(False)
        )
        try:
            since = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
            for statement in statements:
                names = [n for n in (":since", ":gen") if n in statement]
                for i, name in enumerate(names, 1):
                    statement = statement.replace(name, f"${i}")
                await pg.execute(statement, *({":since": since, ":gen": 0}[n] for n in names))
            assert await pg.fetchval("SELECT count(*) FROM dir_refresh") > 0
        finally:
            await pg.close()
    assert before == [DUPONT]
    assert await refs(loaded, text="dupont cardio lyon") == before
    assert await refs(loaded, text="dupont", mailbox_type="PER") == [DUPONT]


def test_postgresql_plan_of_a_written_expression() -> None:
    freqs = {"qqpp": 0.7, "qqfdupont": 0.001, "qqbalper": 0.2, "qqfdubois": 0.002}
    assert expression_plan("(qqfdupont:* | qqfdubois:*) & qqpp", freqs) == PgPlan(
        "(qqfdupont:* | qqfdubois:*) & qqpp", "", False
    )
    assert expression_plan("qqbalper & qqpp", freqs).dense  # 14 %: read in order


def test_postgresql_page_keys() -> None:
    """dir_search_page_keys (migration 0017) takes four AND-ed parts: fewer are padded with
    the first, more folded into the last."""
    assert page_keys("martin") == ["martin"] * 4
    assert page_keys("qqbalper & qqdep76 & (pharmacie | pharmacien)") == [
        "qqbalper", "qqdep76", "(pharmacie | pharmacien)", "qqbalper"
    ]  # fmt: skip
    assert page_keys("a & b & c & d & e:*") == ["a", "b", "c", "d & e:*"]

"""``hygie report usage`` output formats (issue 11 item 4), from a known tally: the columns,
CSV as RFC 4180 says (CRLF, a header), JSON, the table, and an empty month."""

from __future__ import annotations

import csv
import io
import json

from server.cli.report import columns, render, rows_of
from storage.usage import Tally

TALLY = Tally(
    sums={
        ("sent", "FINESS:690000001", 0): 3, ("received", "FINESS:690000001", 0): 2,
        ("filed", "FINESS:690000001", 0): 4, ("mdn", "FINESS:690000001", 0): 2,
        ("mdn", "FINESS:690000001", 902): 1, ("mdn", "FINESS:690000001", 906): 1,
        ("patient", "FINESS:690000001", 0): 5, ("sent", "SIRET:12345678900017", 0): 1,
    },
    reached={"FINESS:690000001": 2},
)  # fmt: skip


def test_rows_add_up_by_kind_and_code() -> None:
    first, second = rows_of(TALLY)
    assert first["group"] == "FINESS:690000001"
    assert (first["messages_sent"], first["messages_received"], first["documents_filed"]) == (
        3, 2, 4,
    )  # fmt: skip
    # Distinct patients, not patient deliveries; MDN errors by code and in all.
    assert first["patients_reached"] == 2
    assert (first["mdn_processed"], first["mdn_errors"]) == (2, 2)
    assert (first["mdn_error_902"], first["mdn_error_906"], first["mdn_error_900"]) == (1, 1, 0)
    assert second["group"] == "SIRET:12345678900017" and second["messages_sent"] == 1


def test_csv_is_rfc4180_with_a_header() -> None:
    text = render("2026-11", "structure", "csv", rows_of(TALLY))
    assert text.endswith("\r\n") and text.count("\r\n") == 3
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert list(rows[0]) == ["structure", *columns()]
    assert rows[0]["mdn_error_902"] == "1" and rows[1]["documents_filed"] == "0"


def test_json_names_the_month_and_the_grouping() -> None:
    document = json.loads(render("2026-11", "structure", "json", rows_of(TALLY)))
    assert document["month"] == "2026-11" and document["by"] == "structure"
    assert document["rows"][0]["structure"] == "FINESS:690000001"
    assert document["rows"][0]["patients_reached"] == 2


def test_table_shows_error_codes_that_occur() -> None:
    lines = render("2026-11", None, "table", rows_of(TALLY)).splitlines()
    assert lines[0] == "Usage 2026-11"
    assert lines[1].split() == ["all", "sent", "received", "filed", "patients", "MDN", "ok",
                                "MDN", "err", "902", "906"]  # fmt: skip
    assert render("2026-12", None, "table", []).splitlines()[-1] == "(nothing recorded this month)"
    assert json.loads(render("2026-12", None, "json", []))["rows"] == []


def test_csv_cells_from_senders_are_not_formulas() -> None:
    """``--by software`` groups by what senders wrote in ``X-MSS-NIL``: a value a spreadsheet
    would run as a formula is quoted with a leading apostrophe; others are as they are."""
    tally = Tally(sums={("sent", '=HYPERLINK("https://x.example","clic")', 0): 1,
                        ("sent", "@SUM(A1)", 0): 1, ("sent", "Logiciel-1.0", 0): 1},
                  reached={})  # fmt: skip
    rows = list(csv.reader(io.StringIO(render("2026-11", "software", "csv", rows_of(tally)),
                                       newline="")))  # fmt: skip
    groups = sorted(row[0] for row in rows[1:])
    assert groups == ['\'=HYPERLINK("https://x.example","clic")', "'@SUM(A1)", "Logiciel-1.0"]

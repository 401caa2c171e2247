"""``hygie report usage|metrics-token``: usage indicators (issue 11 item 4).

hygie report usage --month 2026-11 [--by structure|software|mailbox-type] [--format table|csv|json]
hygie report metrics-token          # a new bearer token for Prometheus (printed once)
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import TYPE_CHECKING

import click

from server.cli.common import _config, _with_db, fail, run

if TYPE_CHECKING:
    from storage.usage import Tally

MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
ERROR_CODES = tuple(range(900, 907))
BY = {"structure": "structure", "software": "software", "mailbox-type": "mailbox_type"}


def columns() -> list[str]:
    return [
        "messages_sent", "messages_received", "documents_filed", "patients_reached",
        "mdn_processed", "mdn_errors", *(f"mdn_error_{c}" for c in ERROR_CODES),
    ]  # fmt: skip


def rows_of(t: Tally) -> list[dict[str, int | str]]:
    """One row per group value (sorted), with every column."""
    groups = sorted({g for _, g, _ in t.sums} | set(t.reached))
    rows: list[dict[str, int | str]] = []
    for group in groups:

        def total(kind: str, code: int | None = None, g: str = group) -> int:
            return sum(
                n for (k, gg, c), n in t.sums.items()
                if k == kind and gg == g and (code is None or c == code)
            )  # fmt: skip

        errors = total("mdn") - total("mdn", 0)
        row: dict[str, int | str] = {
            "group": group,
            "messages_sent": total("sent"),
            "messages_received": total("received"),
            "documents_filed": total("filed"),
            "patients_reached": t.reached.get(group, 0),
            "mdn_processed": total("mdn", 0),
            "mdn_errors": errors,
        }
        for code in ERROR_CODES:
            row[f"mdn_error_{code}"] = total("mdn", code)
        rows.append(row)
    return rows


def _cell(value: str) -> str:
    """A text cell a spreadsheet shows as text: the software name is whatever a sender wrote
    in ``X-MSS-NIL``, and ``=HYPERLINK(…)`` would otherwise be a formula (OWASP "CSV
    injection"); such a value gets a leading apostrophe."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def render(month: str, by: str | None, fmt: str, rows: list[dict[str, int | str]]) -> str:
    key = by or "all"
    if fmt == "json":
        document = {
            "month": month,
            "by": key,
            "rows": [{key: r["group"], **{c: r[c] for c in columns()}} for r in rows],
        }
        return json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    header = [key, *columns()]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
        writer.writerow(header)
        for r in rows:
            writer.writerow([_cell(str(r["group"] or "")), *(r[c] for c in columns())])
        return out.getvalue()
    shown = ["messages_sent", "messages_received", "documents_filed", "patients_reached",
             "mdn_processed", "mdn_errors"]  # fmt: skip
    codes = [f"mdn_error_{c}" for c in ERROR_CODES if any(r[f"mdn_error_{c}"] for r in rows)]
    titles = [key, "sent", "received", "filed", "patients", "MDN ok", "MDN err",
              *(c.rsplit("_", 1)[1] for c in codes)]  # fmt: skip
    lines = [[str(r["group"] or "-"), *(str(r[c]) for c in shown + codes)] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(titles, *lines, strict=False)]
    text = [f"Usage {month}"]
    for line in [titles, *lines]:
        cells = [line[0].ljust(widths[0])] + [
            v.rjust(w) for v, w in zip(line[1:], widths[1:], strict=True)
        ]
        text.append("  ".join(cells).rstrip())
    if not rows:
        text.append("(nothing recorded this month)")
    return "\n".join(text) + "\n"


@click.group()
def report() -> None:
    """Usage indicators: the monthly report, and the token for /metrics."""


@report.command("usage")
@click.option("--month", required=True, metavar="YYYY-MM", help="Month (Europe/Paris time).")
@click.option("--by", type=click.Choice(sorted(BY)), default=None, help="One row per value.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
    show_default=True,
)  # fmt: skip
@click.pass_context
def report_usage(ctx: click.Context, month: str, by: str | None, fmt: str) -> None:
    """Messages sent and received, documents filed, patients reached, MDNs (processed, and
    errors by MSSanté code 900-906), for one month, per structure, software or mailbox type."""
    from storage.usage import tally

    if not MONTH.match(month):
        fail(f"--month must be YYYY-MM, not {month!r}")
    config = _config(ctx)

    async def read() -> Tally:
        db = await _with_db(config)
        try:
            return await tally(db, month, by)
        finally:
            await db.close()

    click.echo(render(month, by, fmt, rows_of(run(read()))), nl=False)


@report.command("metrics-token")
@click.pass_context
def report_metrics_token(ctx: click.Context) -> None:
    """A new bearer token for GET /metrics on the HTTPS port (the previous one stops
    working). Only its SHA-256 is kept; give the token to Prometheus (credentials_file)."""
    from server.ops.metrics import TOKEN_FILE, new_token

    config = _config(ctx)
    click.echo(new_token(config.data_dir))
    click.echo(f"(kept as a digest in {config.path(TOKEN_FILE)})", err=True)

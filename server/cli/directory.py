"""``hygie directory import|search|synth``: the practitioner directory from the command line.

hygie directory import ps-libreacces PS_LibreAcces.zip
hygie directory import mssante Extraction_Correspondance_MSSante_202611220300.txt
hygie directory search "dupont cardio lyon" [--profession 10] [--type PER]
hygie directory synth --kind mssante --rows 1000 --out mss.txt
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any, TextIO

import click

from directory.extracts import MSSANTE, PS_LIBREACCES, ExtractError, Rejected
from server.config import ConfigError, load_config

# The import, the search and the storage layer are imported by the commands that use them:
# `hygie directory --help` needs only the names of the extracts.

KINDS = click.Choice([PS_LIBREACCES, MSSANTE])
SHOWN_REJECTIONS = 20


def _fail(message: str) -> None:
    click.echo(f"hygie: error: {message}", err=True)
    sys.exit(1)


def _database_url(ctx: click.Context) -> str:
    try:
        return load_config(ctx.obj["data"]).database_url
    except ConfigError as exc:
        _fail(str(exc))
        raise  # unreachable


@click.group("directory")
def directory() -> None:
    """The practitioner directory: import the national extracts, search, synthesise."""


@directory.command("import")
@click.argument("kind", type=KINDS)
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--report",
    type=click.Path(path_type=Path),
    default=None,
    help="Write every rejected line (number and reason) to this file.",
)
@click.option("--timings", is_flag=True, help="Print the seconds spent in each phase.")
@click.pass_context
def import_(ctx: click.Context, kind: str, file: Path, report: Path | None, timings: bool) -> None:
    """Import FILE (.txt or the published .zip) of KIND; vanished entries become inactive."""
    from directory import load

    url = _database_url(ctx)
    if not file.is_file():
        _fail(f"no such file: {file}")
    report_fh: TextIO | None = report.open("w", encoding="utf-8") if report else None
    total = _size(file)
    bar: Any = None
    if sys.stderr.isatty():
        bar = click.progressbar(length=total, label=f"importing {file.name}", file=sys.stderr)
        bar.__enter__()
    done = [0]

    def progress(lines: int) -> None:
        if bar is not None:
            bar.update(lines - done[0])
            done[0] = lines

    def rejected(r: Rejected) -> None:
        if report_fh is not None:
            report_fh.write(f"line {r.line}: {r.reason}\n")

    try:
        result = asyncio.run(
            load.import_extract(url, kind, file, progress=progress, on_reject=rejected)
        )
    except ExtractError as exc:
        _fail(f"{file}: {exc}")
        return
    except OSError as exc:
        _fail(f"{file}: {exc.strerror or exc}")
        return
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
        if report_fh is not None:
            report_fh.close()
    click.echo(
        f"{file.name}: {result.lines} lines, {result.imported} imported, "
        f"{result.rejected} rejected, {result.deactivated} deactivated "
        f"({result.seconds:.1f} s)"
    )
    if timings:
        click.echo("timings: " + " ".join(f"{k}={v}" for k, v in result.phases.items()))
        click.echo("cpu: " + " ".join(f"{k}={v}" for k, v in result.cpu.items()))
    for r in result.rejections[:SHOWN_REJECTIONS]:
        click.echo(f"  line {r.line}: {r.reason}", err=True)
    if result.rejected > SHOWN_REJECTIONS:
        more = result.rejected - SHOWN_REJECTIONS
        hint = f" (all in {report})" if report else " (--report FILE lists them all)"
        click.echo(f"  … and {more} more{hint}", err=True)


def _size(file: Path) -> int:
    """Lines in the file, estimated from its size, for the progress bar."""
    import zipfile

    try:
        if zipfile.is_zipfile(file):
            with zipfile.ZipFile(file) as z:
                size = sum(i.file_size for i in z.infolist())
        else:
            size = file.stat().st_size
    except OSError:
        return 0
    return max(1, size // 330)  # about 330 bytes a PS_LibreAcces line, 250 an MSSanté one


@directory.command("search")
@click.argument("words", default="")
@click.option("--profession", default="", help="Profession code (TRE_G15), e.g. 10.")
@click.option("--specialty", default="", help="Savoir-faire code (TRE_R38), e.g. SM04.")
@click.option("--city", default="", help="Town.")
@click.option("--postcode", default="", help="Postcode or its beginning (69 = Rhône).")
@click.option(
    "--type",
    "mailbox_type",
    type=click.Choice(["PER", "ORG", "APP", "CAB"], case_sensitive=False),
    default=None,
    help="Only entries with a mailbox of this type.",
)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.pass_context
def search_(
    ctx: click.Context,
    words: str,
    profession: str,
    specialty: str,
    city: str,
    postcode: str,
    mailbox_type: str | None,
    limit: int,
) -> None:
    """Find practitioners and organisations: every word is a name, label or town prefix."""
    from directory.search import Hit, Query, SearchError, search
    from storage.blobs import open_blob_store
    from storage.db import Database

    url = _database_url(ctx)
    query = Query(
        text=words,
        profession=profession,
        specialty=specialty,
        city=city,
        postcode=postcode,
        mailbox_type=(mailbox_type or "").upper(),
        limit=limit,
    )
    try:
        query.terms()
    except SearchError as exc:
        _fail(str(exc))

    async def run() -> list[Hit]:
        db = Database(url, open_blob_store("file", ctx.obj["data"] / "blobs"))
        try:
            return await search(db, query)
        finally:
            await db.close()

    hits = asyncio.run(run())
    if not hits:
        click.echo("no match")
        return
    rows = [("id", "name", "profession", "place", "mailbox")]
    for h in hits:
        rows.append(
            (
                h.ref,
                h.name,
                " / ".join(v for v in (h.profession, h.specialty) if v),
                h.places[0] if h.places else "",
                h.mailboxes[0][0] if h.mailboxes else "",
            )
        )
    widths = [min(48, max(len(r[i]) for r in rows)) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(v[:48].ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


@directory.command("synth")
@click.option("--kind", type=KINDS, required=True)
@click.option("--rows", type=click.IntRange(0, None), required=True)
@click.option("--seed", type=int, default=None, help="Random seed (same seed, same file).")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Output file (default: standard output).",
)
def synth_(kind: str, rows: int, seed: int | None, out: Path | None) -> None:
    """Write a synthetic extract of KIND with ROWS lines, in the published format."""
    from directory import synth

    if out is None:
        synth.write(kind, rows, sys.stdout, seed)
        return
    try:
        with out.open("w", encoding="utf-8") as fh:
            synth.write(kind, rows, fh, seed)
    except OSError as exc:
        _fail(f"{out}: {exc.strerror or exc}")
    click.echo(f"wrote {rows} {kind} lines to {out}", err=True)


@directory.command("mailbox")
@click.argument("address")
@click.option(
    "--type",
    "kind",
    type=click.Choice(["PER", "ORG", "APP", "CAB"], case_sensitive=False),
    required=True,
)
@click.option("--practitioner", default="", help="Owner's IdNat (8 + RPPS, 0 + ADELI).")
@click.option("--organisation", default="", help="Owner structure's IdNat (1 + FINESS …).")
@click.option("--service", default="", help="Service (ORG mailboxes).")
@click.option("--liste-rouge", is_flag=True, help="Never published nor shown by the API.")
@click.option("--inactive", is_flag=True, help="Closed: mail to it is refused.")
@click.pass_context
def mailbox_(
    ctx: click.Context,
    address: str,
    kind: str,
    practitioner: str,
    organisation: str,
    service: str,
    liste_rouge: bool,
    inactive: bool,
) -> None:
    """Add or update one of this operator's own mailboxes in the directory."""
    from directory.local import DirectoryError, set_mailbox
    from storage.blobs import open_blob_store
    from storage.db import Database

    url = _database_url(ctx)

    async def run() -> bool:
        db = Database(url, open_blob_store("file", ctx.obj["data"] / "blobs"))
        await db.start()
        try:
            return await set_mailbox(
                db,
                address,
                kind,
                practitioner_idnat=practitioner,
                organisation_identifier=organisation,
                service=service,
                liste_rouge=liste_rouge,
                active=not inactive,
            )
        finally:
            await db.close()

    try:
        created = asyncio.run(run())
    except DirectoryError as exc:
        _fail(str(exc))
        return
    click.echo(f"{'added' if created else 'updated'} {address.strip().lower()}")

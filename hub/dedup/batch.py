"""``hub dedup batch``: batch record linkage of CSV files.

One file: find the records in it that are the same person (deduplicate). Two files: find the
pairs across them that are the same person (link, one-to-one). The model is trained on the
input itself (EM needs no labels), so the command works on a municipal export it has never
seen. Output: ``id_a,id_b,score,decision`` with decision ``match`` or ``review`` and score the
match weight in bits.

Legacy exports are what this meets: ISO-8859-15 or Windows-1252 or UTF-8 with a BOM, ``;`` as
delimiter (German Excel) or ``,``, dates as ``DD.MM.YYYY``. Encoding and delimiter are detected;
the columns are named by ``--columns``.

Exit codes: 0 done, 1 input refused (unreadable file, missing column, duplicate ids), 2 usage.
Errors are one sentence on stderr; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import typer

from hub.dedup.linkage import Linker, LinkPair
from hub.dedup.normalise import parse_date
from hub.dedup.records import PersonRecord

__all__ = ["app", "parse_column_map", "read_csv", "detect_encoding", "InputRefused", "UsageProblem"]

FIELDS = ("record_id", "given_name", "family_name", "birth_name", "birth_date", "street", "house_number", "postcode", "city")

app = typer.Typer(
    help="Identity resolution: find records that are the same person.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click messages: usage errors stay one line on stderr
)


@app.callback()
def _group() -> None:
    """Identity resolution: find records that are the same person."""


class InputRefused(Exception):
    """The input cannot be used (exit 1)."""


class UsageProblem(Exception):
    """The command line is wrong (exit 2)."""


# --------------------------------------------------------------------------- column map

def parse_column_map(spec: str) -> dict[str, str]:
    """Parse ``field=column,...`` (or a path to a JSON/YAML file with that mapping) into
    ``{field: column}``. Identifier columns are written ``id:SCHEME=column`` or ``ids.SCHEME=column``
    and come back as ``{"id:SCHEME": column}``."""
    path = Path(spec)
    if spec.lower().endswith((".json", ".yaml", ".yml")) or (path.suffix and path.exists()):
        if not path.exists():
            raise UsageProblem(f"the column map file {spec} does not exist")
        text = path.read_text(encoding="utf-8-sig")
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception as exc:  # noqa: BLE001 - any parse error is a usage problem
            raise UsageProblem(f"the column map file {spec} is not valid {path.suffix[1:].upper()}: {exc}".split("\n")[0]) from None
        if not isinstance(data, dict):
            raise UsageProblem(f"the column map file {spec} must hold a mapping of field to column")
        pairs = []
        for k, v in data.items():
            if k in ("ids", "id") and isinstance(v, dict):
                pairs.extend((f"id:{s}", str(c)) for s, c in v.items())
            else:
                pairs.append((str(k), str(v)))
    else:
        pairs = []
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            if "=" not in part:
                raise UsageProblem(f"--columns entry '{part}' is not of the form field=column")
            k, v = part.split("=", 1)
            pairs.append((k.strip(), v.strip()))
    out: dict[str, str] = {}
    for k, v in pairs:
        if k.startswith("ids."):
            k = "id:" + k[4:]
        if not (k in FIELDS or (k.startswith("id:") and len(k) > 3)):
            raise UsageProblem(f"--columns names the unknown field '{k}' (known: {', '.join(FIELDS)}, id:SCHEME)")
        if not v:
            raise UsageProblem(f"--columns gives no column for the field '{k}'")
        out[k] = v
    if not any(k in out for k in ("given_name", "family_name", "birth_date")):
        raise UsageProblem("--columns must map at least one of given_name, family_name, birth_date")
    return out


# --------------------------------------------------------------------------- reading

def detect_encoding(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with a BOM, else Windows-1252 if it uses the bytes
    0x80-0x9F (printable there, control characters in ISO-8859), else ISO-8859-15 (the municipal
    default). A UTF-16 file without a BOM is refused by its NUL bytes (read_csv)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"  # "Unicode text" as spreadsheet programs save it: with a byte order mark
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    if any(0x80 <= b <= 0x9F for b in data):
        return "cp1252"
    return "iso-8859-15"


def _delimiter(header: str) -> str:
    return max(";,\t", key=header.count) if any(c in header for c in ";,\t") else ","


def read_csv(path: Path, columns: dict[str, str], id_prefix: str = "") -> list[PersonRecord]:
    """Read one CSV file into person records according to ``columns``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputRefused(f"the file {path} does not exist") from None
    except OSError as exc:
        raise InputRefused(f"the file {path} cannot be read ({exc.strerror})") from None
    encoding = detect_encoding(data)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        raise InputRefused(f"the file {path} is neither UTF-8 nor UTF-16 nor ISO-8859-15 nor Windows-1252") from None
    if "\x00" in text:  # UTF-16 without a BOM reads as text with NUL bytes in every 8-bit encoding
        raise InputRefused(f"the file {path} holds NUL bytes: save it as UTF-8 (or UTF-16 with a byte order mark)")
    if not text.strip():
        raise InputRefused(f"the file {path} is empty")
    first_line = text.splitlines()[0]
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_delimiter(first_line))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    missing = [c for c in columns.values() if c not in header]
    if missing:
        raise InputRefused(f"the column '{missing[0]}' named in --columns is not in the header of {path}")
    id_schemes = [k for k in columns if k.startswith("id:")]
    records: list[PersonRecord] = []
    seen: set[str] = set()
    for line_no, row in enumerate(reader, start=2):
        if None in row:  # more cells than header names
            raise InputRefused(f"line {line_no} of {path} has more fields than its header")
        values = {field: (row.get(col) or "").strip() for field, col in columns.items()}
        rid = values.pop("record_id", "") or str(line_no)
        rid = id_prefix + rid
        if rid in seen:
            raise InputRefused(f"the record id '{rid}' occurs twice in {path}")
        seen.add(rid)
        records.append(PersonRecord.from_mapping(rid, values, id_schemes=id_schemes))
    if not records:
        raise InputRefused(f"the file {path} has a header but no records")
    unreadable = sum(1 for r in records if r.birth_date and parse_date(r.birth_date) is None)
    if unreadable:
        typer.echo(
            f"Warning: {unreadable} birth date(s) in {path} could not be read (a two-digit year, an impossible date or "
            "no date at all) and are compared as missing.",
            err=True,
        )
    return records


def _check_writable(out: Path) -> None:
    """Before the linkage runs (minutes for large files): can --out be written at all?"""
    if out.is_dir():
        raise UsageProblem(f"--out {out} is a directory, not a file")
    existed = out.exists()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise UsageProblem(f"--out {out} cannot be written ({exc.strerror})") from None
    if not existed:
        out.unlink()


def write_pairs(pairs: list[LinkPair], out: Path) -> None:
    """Write ``id_a,id_b,score,decision``, best score first (UTF-8, comma-separated)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id_a", "id_b", "score", "decision"])
        for p in sorted(pairs, key=lambda p: (-p.weight, p.id_a, p.id_b)):
            w.writerow([p.id_a, p.id_b, f"{p.weight:.2f}", p.decision])


# --------------------------------------------------------------------------- command

@app.command("batch")
def batch(
    files: list[Path] = typer.Argument(..., help="A.csv to deduplicate, or A.csv B.csv to link.", show_default=False),
    columns: str = typer.Option(
        ...,
        "--columns",
        "-c",
        help="field=column,... (fields: record_id, given_name, family_name, birth_name, birth_date, "
        "street, house_number, postcode, city, id:SCHEME), or a JSON/YAML file with that mapping.",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write id_a,id_b,score,decision."),
    many_to_many: bool = typer.Option(False, "--many-to-many", help="Linking: allow a record to match several records of the other file."),
    workers: int = typer.Option(-1, "--workers", help="Threads for string comparison (-1: all cores)."),
    debug: bool = typer.Option(False, "--debug", help="Show the traceback on errors."),
) -> None:
    """Find records that are the same person: one file deduplicates, two files link."""
    try:
        if len(files) > 2:
            raise UsageProblem("give one file to deduplicate or two files to link, not more")
        mapping = parse_column_map(columns)
        _check_writable(out)
        _run(files, mapping, out, one_to_one=not many_to_many, workers=workers)
    except UsageProblem as exc:
        if debug:
            raise
        typer.echo(f"Error: {exc}.", err=True)
        raise typer.Exit(2) from None
    except InputRefused as exc:
        if debug:
            raise
        typer.echo(f"Error: {exc}.", err=True)
        raise typer.Exit(1) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:  # noqa: BLE001 - the contract is one sentence, never a traceback
        if debug:
            raise
        typer.echo(f"Error: the linkage failed unexpectedly ({type(exc).__name__}: {exc}); run with --debug for details.", err=True)
        raise typer.Exit(1) from None


def _run(files: list[Path], mapping: dict[str, str], out: Path, *, one_to_one: bool, workers: int) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description:<22}"), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
        console=console, disable=not console.is_terminal,  # a bar only where a person watches
    ) as progress:
        tasks: dict[str, int] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        reading = progress.add_task("reading", total=len(files))
        lists = []
        for i, f in enumerate(files):
            lists.append(read_csv(f, mapping))
            progress.update(reading, completed=i + 1)
        linker = Linker(workers=workers)
        if len(lists) == 1:
            if len(lists[0]) < 2:
                raise InputRefused(f"the file {files[0]} has fewer than two records to compare")
            pairs = linker.dedupe(lists[0], fit=True, progress=report)
        else:
            pairs = linker.link(lists[0], lists[1], fit=True, one_to_one=one_to_one, progress=report)
    write_pairs(pairs, out)
    n_match = sum(p.decision == "match" for p in pairs)
    typer.echo(f"{n_match} match and {len(pairs) - n_match} review pairs written to {out}", err=True)


def main() -> None:  # pragma: no cover - `python -m hub.dedup.batch`
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

"""`hub audit ...`: verify the hash-chained audit log, record anchors, export a period for an auditor.

The group's typer app is made and mounted here rather than in `base`: nothing else refers to it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from hub.cli.base import _hub, app, fail, operator

audit_app = typer.Typer(help="The hash-chained audit log: verify it, anchor it, export it for an auditor.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(
    anchors: Annotated[
        Optional[Path], typer.Option("--anchors", metavar="FILE", help="Also check anchors kept elsewhere: JSON lines as `hub audit anchor` prints them (or an export).")
    ] = None,
) -> None:
    """Check every entry's hash and link, the chain heads and the anchors; exit 1 naming the first broken entry."""
    from hub.store import audit_trail, db

    kept: list[audit_trail.Anchor] = []
    if anchors is not None:
        try:
            kept = audit_trail.read_anchors(anchors.read_text(encoding="utf-8").splitlines(), str(anchors))
        except OSError as exc:
            fail(f"cannot read {anchors}: {exc.strerror or exc}", 2)
        except (UnicodeDecodeError, ValueError) as exc:
            fail(str(exc), 2)
    hub = _hub()
    with db.read(hub.engine) as conn:
        verdict = audit_trail.verify(conn, kept)
    if verdict.broken is not None:
        fail(verdict.broken.sentence())
    typer.echo(verdict.summary())


@audit_app.command("anchor")
def audit_anchor() -> None:
    """Record the head of every shard chain now and print them as JSON lines, for a copy kept elsewhere."""
    from hub.store import audit_trail, db

    hub = _hub()
    with db.write(hub.engine) as conn:
        anchored = audit_trail.anchor(conn)
    for line in anchored:
        typer.echo(json.dumps(line, separators=(",", ":")))
    typer.echo(f"anchored {len(anchored)} shard chains ({sum(a['seq'] for a in anchored)} entries)", err=True)


def _moment(value: str, option: str, end: bool) -> dt.datetime:
    """A day (YYYY-MM-DD, UTC; the --to day is included) or an ISO 8601 time, as an aware UTC datetime."""
    try:
        day = dt.date.fromisoformat(value)
        return dt.datetime.combine(day + dt.timedelta(days=1 if end else 0), dt.time(), dt.timezone.utc)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not a date (YYYY-MM-DD) or an ISO 8601 time", 2)
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)).astimezone(dt.timezone.utc)


@audit_app.command("export")
def audit_export(
    start: Annotated[str, typer.Option("--from", metavar="DATE", help="First day (YYYY-MM-DD, UTC) or time (ISO 8601) of the period.")],
    end: Annotated[str, typer.Option("--to", metavar="DATE", help="Last day of the period (included), or the time it ends before.")],
    out: Annotated[Path, typer.Option("--out", metavar="FILE", help="Where to write the export (replaced if it exists).")],
    fmt: Annotated[str, typer.Option("--format", metavar="jsonl|csv", help="JSON lines (default) or CSV.")] = "jsonl",
) -> None:
    """Every entry of the period with its hash and previous hash, and the anchors, for an auditor to verify offline."""
    from hub.store import audit_trail, db
    from hub.store.history import audit

    if fmt not in audit_trail.FORMATS:
        fail(f"--format must be one of {', '.join(audit_trail.FORMATS)}, not {fmt!r}", 2)
    first, until = _moment(start, "--from", False), _moment(end, "--to", True)
    if first >= until:
        fail(f"--from {start} is not before --to {end}", 2)
    if not out.parent.is_dir():
        fail(f"cannot write {out}: directory {out.parent} does not exist", 2)
    hub = _hub()
    partial = out.with_name(f".{out.name}.partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as stream, db.read(hub.engine) as conn:
            entries, anchors = audit_trail.export(conn, first, until, stream, fmt)
        os.replace(partial, out)  # a failed export leaves no half-written file under the name asked for
    finally:
        partial.unlink(missing_ok=True)
    with db.write(hub.engine) as conn:  # the export is an access to the log: audited once written
        audit(conn, operator(), "audit-exported", file=str(out), start=first.isoformat(), end=until.isoformat(), entries=entries, anchors=anchors)
    typer.echo(f"wrote {entries} entries and {anchors} anchors from {first.isoformat()} to before {until.isoformat()} to {out}")

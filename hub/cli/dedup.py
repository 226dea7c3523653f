"""`hub dedup ...` (the master person index, for operators) and `hub db upgrade`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hub.cli.base import _hub, _print, db_app, dedup_app, fail, operator


# -- dedup: the master person index (operators) -------------------------------------------------------
def _person_index(hub):  # type: ignore[no-untyped-def]
    if hub.person_index is None:
        fail("no master person index is configured (contracts/dedup/model.json)")
    return hub.person_index


def _operator_call(action, *args) -> Any:  # type: ignore[no-untyped-def]
    from hub.store import db
    from hub.findings import Refusal
    from hub.store.history import audit

    hub = _hub()
    index = _person_index(hub)
    try:
        with db.write(hub.engine) as conn:
            result = action(index, conn, *args)
            audit(conn, operator(), f"person-index-{action.__name__}", detail=[str(a) for a in args])
            return result
    except Refusal as refusal:
        fail(refusal.detail)


@dedup_app.command("reviews")
def dedup_reviews(
    status: Annotated[str, typer.Option(help="open, confirmed or rejected.")] = "open",
    as_json: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """Uncertain matches waiting for an operator."""

    def reviews(index, conn):  # type: ignore[no-untyped-def]
        return index.reviews(conn, status)

    rows = _operator_call(reviews)
    lines = [
        f"{r['id']}  weight {r['weight']:6.1f}  {r['record'].get('given_name', '')} {r['record'].get('family_name', '')} "
        f"({r['record'].get('birth_date', '?')}, {r['record']['partner']})  ~  {r['candidate'].get('given_name', '')} "
        f"{r['candidate'].get('family_name', '')} ({r['candidate'].get('birth_date', '?')}, person {r['candidate']['person_id']})"
        for r in rows
    ]
    _print(rows, as_json, "\n".join(lines) or f"no {status} reviews")


@dedup_app.command("confirm")
def dedup_confirm(review_id: Annotated[str, typer.Argument(help="The review's id (see `hub dedup reviews`).")]) -> None:
    """Same person: merge the record's person into the candidate."""

    def confirm(index, conn, rid):  # type: ignore[no-untyped-def]
        return index.decide(conn, rid, True, operator())

    _operator_call(confirm, review_id)
    typer.echo(f"review {review_id} confirmed: merged")


@dedup_app.command("reject")
def dedup_reject(review_id: Annotated[str, typer.Argument(help="The review's id (see `hub dedup reviews`).")]) -> None:
    """Different persons: keep them apart."""

    def reject(index, conn, rid):  # type: ignore[no-untyped-def]
        return index.decide(conn, rid, False, operator())

    _operator_call(reject, review_id)
    typer.echo(f"review {review_id} rejected: kept apart")


@dedup_app.command("person")
def dedup_person(
    person_id: Annotated[str, typer.Argument(help="The person's id in the master person index.")],
    as_json: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """A person: records, id cross-reference and history of merges."""

    def person(index, conn, pid):  # type: ignore[no-untyped-def]
        return index.person(conn, pid)

    view = _operator_call(person, person_id)
    lines = [f"person {view['id']}" + (f" (merged into {view['merged_into']})" if view["merged_into"] else "")]
    lines += [f"  {x['partner']:24} {x['local_id']}" for x in view["xref"]]
    lines += [f"  {e['at']}  {e['action']}  {e.get('other') or ''}" for e in view["history"]]
    _print(view, as_json, "\n".join(lines))


@dedup_app.command("unmerge")
def dedup_unmerge(person_id: Annotated[str, typer.Argument(help="The id of the person that was merged into another.")]) -> None:
    """Undo the merge of PERSON_ID into another person: its records go back to it."""

    def unmerge(index, conn, pid):  # type: ignore[no-untyped-def]
        return index.unmerge(conn, pid, operator())

    _operator_call(unmerge, person_id)
    typer.echo(f"person {person_id} unmerged")


# -- data conflicts of master data (operators) ---------------------------------------------------------
def _conflict_call(action):  # type: ignore[no-untyped-def]
    """`action(hub, conn)` in one transaction; a refusal is one line on stderr, exit 1, nothing changed."""
    from hub.findings import Refusal
    from hub.store import db

    hub = _hub()
    try:
        with db.write(hub.engine) as conn:
            return action(hub, conn)
    except Refusal as refusal:
        fail(refusal.detail)


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


@dedup_app.command("conflicts")
def dedup_conflicts(
    status: Annotated[str, typer.Option(help="open or resolved.")] = "open",
    as_json: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """Master data two partners changed concurrently: both values, waiting for an operator."""
    from hub.dedup import master_data
    from hub.store.history import audit

    if status not in ("open", "resolved"):
        fail(f"--status must be open or resolved, not {status!r}", 2)

    def listed(hub, conn):  # type: ignore[no-untyped-def]
        rows = master_data.conflicts(conn, status)
        audit(conn, "cli", "conflicts-read", count=len(rows))
        return rows

    rows = _conflict_call(listed)
    lines = [
        f"{r['id']}  person {r['person_id']}  {r['field']}: a {_shown(r['a']['value'])} ({r['a']['partner']})  "
        f"b {_shown(r['b']['value'])} ({r['b']['partner']})" + (f"  -> {r['chosen']}" if r.get("chosen") else "")
        for r in rows
    ]
    _print(rows, as_json, "\n".join(lines) or f"no {status} data conflicts")


@dedup_app.command("resolve")
def dedup_resolve(
    conflict_id: Annotated[str, typer.Argument(help="The data conflict's id (see `hub dedup conflicts`).")],
    pick: Annotated[str, typer.Option("--pick", help="a: the hub's value (the earlier change); b: the concurrent change.")],
    as_json: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """Decide a data conflict: the picked value is applied and forwarded to the partners that hold another."""
    from hub.pipeline.master_data import resolve_conflict

    if pick not in ("a", "b"):
        fail(f"--pick must be a or b, not {pick!r}", 2)
    result = _conflict_call(lambda hub, conn: resolve_conflict(hub, conn, conflict_id, pick, "cli"))
    forwarded = ", ".join(result["forwarded_to"]) or "no one (every partner holds it already)"
    _print(result, as_json, f"conflict {conflict_id} resolved: {result['field']} = {_shown(result['value'])}, forwarded to {forwarded}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database schema to the newest version (Alembic)."""
    hub = _hub(migrate=False)
    hub.migrate()
    typer.echo(f"database at {hub.engine.url.render_as_string(hide_password=True)} is up to date")

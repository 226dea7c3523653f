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


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database schema to the newest version (Alembic)."""
    hub = _hub(migrate=False)
    hub.migrate()
    typer.echo(f"database at {hub.engine.url.render_as_string(hide_password=True)} is up to date")

"""Stage: the case a message concerns -- found by the sender's reference, or opened by an assignment --
and the check that the sender belongs to it (and, for a provider, runs the measure it reports on)."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from hub.chain import membership
from hub.findings import Finding, Refusal
from hub.pipeline import read_ahead
from hub.pipeline.context import Context, case_ref
from hub.runtime import Hub
from hub.store import writes
from hub.store.history import record


def case_chain(hub: Hub, conn: Connection, ctx: Context) -> None:
    """Find (or, for an assignment, open) the case this message concerns; check the sender belongs to it."""
    body = ctx.message.body
    if any(r.requires_case_membership for r in ctx.routes):
        ref = case_ref(ctx.message)
        ahead = read_ahead.current(conn)
        found = ahead.cases.get((ctx.sender.id, ref)) if ahead is not None and ref else None
        ctx.case = found or (membership.case_for_ref(conn, ctx.sender.id, ref) if ref else None)
        if ctx.case is None:
            pointer = hub.adapter(ctx.row.format).pointer("case_id")
            raise Refusal(
                "business-rule",
                "The message concerns a case that is not assigned to the sender",
                [Finding(f"unknown case reference {ref!r}", pointer=pointer)],
            )
    elif any(r.opens_case for r in ctx.routes):
        customer = getattr(body, "customer_number", None)
        if customer:
            ctx.case = membership.open_case(conn, ctx.sender.id, customer, getattr(body, "bg_number", None), ctx.person_id)
    if ctx.case is not None and ctx.sender.role == "provider":
        _check_runs_measure(hub, conn, ctx)
    if ctx.case is not None:
        record(conn, ctx.row.id, "chain", "case", case=ctx.case.id)
        writes.concerns_case(conn, ctx.row.id, ctx.case.id)


def _check_runs_measure(hub: Hub, conn: Connection, ctx: Context) -> None:
    """A provider reports on the measures it runs for the case, not on another provider's: a member
    of the case could otherwise send starts, absences or exits for a measure it has nothing to do with."""
    measure = getattr(ctx.message.body, "measure_number", None)
    if not measure:
        return
    ahead = read_ahead.current(conn)
    runs = ahead.runs.get((ctx.case.id, ctx.sender.id, measure)) if ahead is not None else None
    if runs is None:
        runs = ctx.sender.id in membership.running(conn, ctx.case.id, measure)
    if not runs:
        pointer = hub.adapter(ctx.row.format).pointer("measure_number")
        raise Refusal(
            "business-rule",
            "The message concerns a measure the sender does not run for this case",
            [Finding(f"measure {measure!r} is not run by {ctx.sender.id} for this case", pointer=pointer)],
        )

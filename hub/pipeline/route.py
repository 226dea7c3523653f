"""Stage: the recipient list -- routing rules x case membership x the recipients' registered purposes."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from hub.chain import membership
from hub.findings import Finding, Refusal
from hub.pipeline.context import Context, Recipient
from hub.routing.rules import Route
from hub.runtime import Hub
from hub.store.history import record


def route(hub: Hub, conn: Connection, ctx: Context) -> None:
    """Who receives the message; a recipient not registered for its purpose and type is withheld."""
    seen: set[str] = set()
    for rule in ctx.routes:
        for partner_id in _targets(hub, conn, ctx, rule):
            partner = hub.partners.get(partner_id)
            if partner is None or partner_id in seen:
                continue
            if rule.purpose not in partner.purposes or ctx.row.message_type not in partner.receives:
                record(conn, ctx.row.id, "routing", "withheld", recipient=partner_id, route=rule.name, purpose=rule.purpose)
                continue
            if rule.opens_case and ctx.case is not None:
                membership.join(conn, ctx.case, partner_id, partner.role)
                measure = getattr(ctx.message.body, "measure_number", None)
                if measure:
                    membership.add_measure(conn, ctx.case, partner_id, measure)
            seen.add(partner_id)
            ctx.recipients.append(Recipient(partner, rule))
    if not ctx.recipients:
        raise Refusal(
            "business-rule",
            "No recipient may receive this message",
            [Finding("the message names no reader that is registered for it, and no case to route by")],
        )
    record(conn, ctx.row.id, "routing", "routed", recipients=[r.partner.id for r in ctx.recipients])


def _targets(hub: Hub, conn: Connection, ctx: Context, rule: Route) -> list[str]:
    if rule.to == "reader":
        reader = ctx.message.header.reader
        partner = hub.partners.get(reader.id) if reader else None
        if partner is None or (rule.reader_role and partner.role != rule.reader_role):
            return []
        return [partner.id]
    if ctx.case is None:
        return []
    if rule.to == "case_owner":
        return [ctx.case.owner]
    members = [p for p in membership.members(conn, ctx.case.id, rule.member_role) if p != ctx.sender.id]
    if rule.same_measure:
        # a provider learns about the measure it runs, not about another provider's measure
        runs = set(membership.running(conn, ctx.case.id, getattr(ctx.message.body, "measure_number", None) or ""))
        members = [p for p in members if p in runs]
    return members

"""The audit log for auditors: entries by actor, action, message, partner, purpose and period, and
the verification of the hash chain (the same `verify` as `hub audit verify`).

Auditors read; nothing here changes the log. Reading it is itself an entry (data protection
control, § 78a SGB X), so the log also shows who looked at it.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from hub.console.i18n import ZONE
from hub.console.web import Auditor
from hub.store import audit_trail
from hub.store.history import audit

router = APIRouter()

Text = Annotated[str | None, Query(max_length=64, pattern=r"^[\w.:@/-]*$")]


def _start_of(day: dt.date | None, plus: int = 0) -> dt.datetime | None:
    return dt.datetime.combine(day + dt.timedelta(days=plus), dt.time(), ZONE) if day else None


@router.get("/audit", include_in_schema=False)
def audit_log(
    v: Auditor, actor: Text = None, action: Text = None, message_id: Text = None, partner: Text = None, purpose: Text = None,
    start: Annotated[dt.date | None, Query(alias="from")] = None, end: Annotated[dt.date | None, Query(alias="to")] = None,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    wanted = audit_trail.EntryFilter(actor or None, action or None, message_id or None, partner or None, purpose or None,
                                     _start_of(start), _start_of(end, 1))
    with v.write() as conn:
        found = audit_trail.entries(conn, wanted, limit=100, before_id=before)
        audit(conn, v.user.actor, "audit-read", purpose="datenschutzkontrolle", count=len(found))
    older = None
    if len(found) == 100:
        params = {k: val for k, val in v.request.query_params.items() if k != "before"}
        older = urllib.parse.urlencode({**params, "before": found[-1]["id"]})
    return v.page("audit.html", entries=found, older=older)


@router.get("/audit/verify", include_in_schema=False)
def verify(v: Auditor) -> Response:
    with v.write() as conn:
        verdict = audit_trail.verify(conn)
        audit(conn, v.user.actor, "audit-verified", purpose="datenschutzkontrolle", intact=verdict.broken is None)
    return v.page("audit_verify.html", verdict=verdict, sentence=verdict.broken.sentence() if verdict.broken else verdict.summary())

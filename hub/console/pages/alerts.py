"""What fires now, for operators: every alert of contracts/alerts.yaml evaluated afresh
(hub.alerts.active, the same the workers notify about), most severe first, each with the page to
act on. Notifications by mail and webhook are the workers' business; this page only shows.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from hub import alerts
from hub.console.web import Operator

router = APIRouter()


@router.get("/alerts", include_in_schema=False)
def alert_page(v: Operator) -> Response:
    with v.read() as conn:
        firing = alerts.active(conn, v.hub)
    return v.page("alerts.html", alerts=firing)

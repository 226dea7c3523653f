"""Console accounts for admins: the list, a new account, a new password, disabling one.

The same functions as `hub users add|passwd|disable` (hub.console.accounts); every change is an
audit entry (access control, § 78a SGB X).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hub.console import accounts
from hub.console.web import Admin, PageError, posted
from hub.store.history import audit

router = APIRouter()


def steering_agencies(hub) -> set[str]:  # type: ignore[no-untyped-def]
    """The partners a case manager can belong to: those whose role owns cases."""
    return {p.id for p in hub.partners.values() if p.role in hub.routes.case_owner_roles}


@router.get("/users", include_in_schema=False)
def users(v: Admin) -> Response:
    with v.read() as conn:
        found = accounts.listing(conn)
    return v.page("users.html", users=found, roles=list(accounts.ROLES), agencies=sorted(steering_agencies(v.hub)))


@router.post("/users", include_in_schema=False)
async def add_user(request: Request, v: Admin) -> Response:
    fields = await posted(request, v)
    try:
        with v.write() as conn:
            added = accounts.add(
                conn, fields.get("login", "").strip(), fields.get("role", ""), fields.get("password", ""),
                display_name=fields.get("display_name", "").strip() or None, agency=fields.get("agency") or None,
                agencies=steering_agencies(v.hub), locale=fields.get("locale", "de"),
            )
            audit(conn, v.user.actor, "console-user-added", login=added.login, role=added.role, agency=added.agency)
    except accounts.AccountError as exc:
        raise PageError(422, str(exc)) from exc
    return v.back("/ops/users", "user-added")


@router.post("/users/{login}/disable", include_in_schema=False)
async def disable_user(request: Request, login: str, v: Admin) -> Response:
    await posted(request, v)
    if login == v.user.login:
        raise PageError(409, v._("You cannot disable your own account."))
    try:
        with v.write() as conn:
            accounts.disable(conn, login)
            audit(conn, v.user.actor, "console-user-disabled", login=login)
    except accounts.AccountError as exc:
        raise PageError(404, str(exc)) from exc
    return v.back("/ops/users", "user-disabled")

"""Signing in and out, and the start page of each role.

The sign-in form has no session yet, so its CSRF protection is a double-submit token: a random value
in a short-lived cookie and in the form; a form posted from another site cannot read the cookie.
A wrong password, an unknown login, a disabled or locked account all get the same answer.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from hub.console import accounts, i18n, sessions
from hub.console.web import COOKIE, HOME, SECURITY_HEADERS, Anyone, PageError, form, posted, render
from hub.runtime import Hub
from hub.store import db
from hub.store.history import audit

router = APIRouter()
LOGIN_COOKIE = "hub_console_login"


def _safe_next(value: str | None) -> str:
    """Only a path of the console itself: never another site (an open redirect)."""
    if value and value.startswith("/ops") and not value.startswith("//") and "\\" not in value and "\n" not in value:
        return value
    return "/ops"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _login_page(request: Request, next_path: str, status: int = 200, failed: bool = False) -> Response:
    token = secrets.token_urlsafe(24)
    locale = i18n.pick(request.headers.get("accept-language"), request.query_params.get("lang"))
    response = render(request, "login.html", locale, status=status, csrf=token, next_path=next_path, failed=failed)
    response.set_cookie(LOGIN_COOKIE, token, max_age=1800, httponly=True, samesite="strict", secure=_secure(request), path="/ops")
    return response


@router.get("/login", include_in_schema=False)
def login_form(request: Request, next: Annotated[str | None, Query(max_length=500)] = None) -> Response:
    return _login_page(request, _safe_next(next))


@router.post("/login", include_in_schema=False)
async def login(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    fields = await form(request)
    expected = request.cookies.get(LOGIN_COOKIE)
    if not expected or not secrets.compare_digest(expected, fields.get("csrf_token", "")):
        raise PageError(403, i18n.translations(i18n.pick(request.headers.get("accept-language"))).gettext(
            "The form has expired or did not come from this console. Please reload the page and try again."))
    login_name, password = fields.get("login", "").strip().lower()[:64], fields.get("password", "")[:1000]
    s = hub.settings
    lockout = accounts.Lockout(s.console_lockout_failures, s.console_lockout_minutes)
    with db.request_deadline(), db.write(hub.engine) as conn:
        user = accounts.sign_in(conn, login_name, password, lockout)
        if user is None:
            audit(conn, f"console:{login_name or '-'}", "console-sign-in-refused")
        else:
            token, _ = sessions.start(conn, user)
            audit(conn, user.actor, "console-signed-in", role=user.role)
    if user is None:
        return _login_page(request, _safe_next(fields.get("next")), status=401, failed=True)
    target = _safe_next(fields.get("next"))
    response = RedirectResponse(HOME[user.role] if target == "/ops" else target, status_code=303, headers=SECURITY_HEADERS)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=_secure(request), path="/ops")
    response.delete_cookie(LOGIN_COOKIE, path="/ops")
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request, v: Anyone) -> Response:
    await posted(request, v)
    with v.write() as conn:
        sessions.end(conn, v.session.token_hash)
        audit(conn, v.user.actor, "console-signed-out")
    response = RedirectResponse("/ops/login", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(COOKIE, path="/ops")
    return response


@router.get("", include_in_schema=False)
@router.get("/", include_in_schema=False)
def home(v: Anyone) -> Response:
    return RedirectResponse(HOME[v.user.role], status_code=303, headers=SECURITY_HEADERS)

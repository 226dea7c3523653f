"""The console's plumbing: who is signed in, what their role lets them open, forms, CSRF, pages.

Every page is a plain HTML form application: no script is needed to use it (keyboard and screen
readers get the browser's own controls), the answers carry a strict Content-Security-Policy, and
every state-changing request is a POST whose form carries the session's CSRF token. A page function
receives a typed `Visit` (the hub, the session, the locale) and raises `PageError` for anything the
visitor should read instead of the page; errors never show internals.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.engine import Connection

from hub.console import i18n, sessions
from hub.console.accounts import User
from hub.runtime import Hub
from hub.store import db

COOKIE = "hub_console"
#: bytes a console form may send (a remark, a filter): far below any message
FORM_LIMIT = 64 * 1024
TEMPLATES = Path(__file__).parent / "templates"

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}

#: where a sign-in interrupted by a POST (an expired session) goes afterwards: the form is gone
HOME_FALLBACK = "/ops"
#: where each role starts
HOME = {"operator": "/ops/flows", "case_manager": "/ops/cases", "auditor": "/ops/audit", "admin": "/ops/users"}


class PageError(Exception):
    """Something the visitor reads instead of the page: a status and one sentence (already translated)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class SignIn(Exception):
    """No live session: go to the sign-in page, and come back to `next` afterwards."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path



def _environment(locale: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.ChainableUndefined,  # optional fields of a view are simply absent
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(i18n.translations(locale), newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(i18n.filters(locale))
    return env


ENVIRONMENTS = {locale: _environment(locale) for locale in i18n.LOCALES}


@dataclass(frozen=True)
class Visit:
    """One request to a console page: the hub, the signed-in session, the visitor's locale."""

    request: Request
    hub: Hub
    session: sessions.Session

    @property
    def user(self) -> User:
        return self.session.user

    @property
    def locale(self) -> str:
        return self.user.locale

    def _(self, text: str, **values: Any) -> str:
        translated = i18n.translations(self.locale).gettext(text)
        return translated % values if values else translated

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with db.request_deadline(), db.write(self.hub.engine) as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with db.request_deadline(), db.read(self.hub.engine) as conn:
            yield conn

    def page(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        return render(self.request, template, self.locale, status=status, session=self.session, **context)

    def back(self, path: str, notice: str | None = None) -> RedirectResponse:
        """After a POST: see the result on a page of its own (a reload does not post again)."""
        if notice:
            path += ("&" if "?" in path else "?") + urllib.parse.urlencode({"notice": notice})
        return RedirectResponse(path, status_code=303, headers=SECURITY_HEADERS)


def render(request: Request, template: str, locale: str, *, status: int = 200, session: sessions.Session | None = None, **context: Any) -> HTMLResponse:
    env = ENVIRONMENTS[locale]
    html = env.get_template(template).render(
        user=session.user if session else None,
        csrf=session.csrf if session else context.pop("csrf", ""),
        path=request.url.path,
        query=dict(request.query_params),
        notice=request.query_params.get("notice"),
        locale=locale,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def settings_timeouts(hub: Hub) -> sessions.Timeouts:
    s = hub.settings
    return sessions.Timeouts(idle_minutes=s.console_idle_minutes, max_hours=s.console_session_hours)


def visit(request: Request) -> Visit:
    """The signed-in visitor, or SignIn."""
    hub: Hub = request.app.state.hub
    with db.request_deadline(), db.read(hub.engine) as conn:
        session, chore = sessions.find(conn, request.cookies.get(COOKIE), settings_timeouts(hub))
    if chore is not None:  # the session's end, or its last use
        with db.request_deadline(), db.write(hub.engine) as conn:
            chore(conn)
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignIn(target if request.method == "GET" else HOME_FALLBACK)
    return Visit(request, hub, session)


def role(*allowed: str) -> Callable[[Request], Visit]:
    """A dependency: the visitor, if their role is one of `allowed`; else a 403 page."""

    def dependency(request: Request) -> Visit:
        v = visit(request)
        if v.user.role not in allowed:
            raise PageError(403, v._("Your role may not open this page."))
        return v

    return dependency


Anyone = Annotated[Visit, Depends(visit)]
Operator = Annotated[Visit, Depends(role("operator"))]
CaseManager = Annotated[Visit, Depends(role("case_manager"))]
Steering = Annotated[Visit, Depends(role("case_manager", "operator"))]
Auditor = Annotated[Visit, Depends(role("auditor"))]
Admin = Annotated[Visit, Depends(role("admin"))]


async def form(request: Request) -> dict[str, str]:
    """The fields of a urlencoded form (the only kind the console sends), bounded in size."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > FORM_LIMIT:
        raise PageError(413, "The form is too large.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT:
            raise PageError(413, "The form is too large.")
    try:
        pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=200)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PageError(400, "The form could not be read.") from exc
    return dict(pairs)


async def posted(request: Request, v: Visit) -> dict[str, str]:
    """The form of a POST by `v`, its CSRF token checked: a form from another site changes nothing."""
    fields = await form(request)
    if not sessions.csrf_matches(v.session, fields.get("csrf_token")):
        raise PageError(403, v._("The form has expired or did not come from this console. Please reload the page and try again."))
    return fields


def as_local_midnight(fields: dict[str, str], starts: tuple[str, ...] = (), ends: tuple[str, ...] = ()) -> dict[str, str]:
    """A date field's day (YYYY-MM-DD, as `<input type=date>` sends it) as the German midnight that
    starts it (`starts`) or the one after it (`ends`, an exclusive end): a filter means local days.
    Anything else is left as sent, for the filter to refuse naming the field."""
    out = dict(fields)
    for name in (*starts, *ends):
        value = out.get(name, "")
        if len(value) == 10:
            try:
                day = dt.date.fromisoformat(value) + dt.timedelta(days=name in ends)
            except ValueError:
                continue
            out[name] = dt.datetime.combine(day, dt.time(), i18n.ZONE).isoformat()
    return out


def error_page(request: Request, status: int, message: str) -> Response:
    """An error as a page of the console, in the visitor's language where known."""
    locale = i18n.pick(request.headers.get("accept-language"))
    return render(request, "error.html", locale, status=status, message=message, status_code=status)

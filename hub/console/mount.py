"""The console in the hub's app: its pages under /ops, its stylesheet, its error pages.

The API's own error handlers answer problem+json; for a path under /ops they hand over to
`error_response`, which answers the same failures as a page in the console's language.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from hub.console.pages import alerts, audit, cases, dead, flows, messages, reviews, signin, steering, users
from hub.console.web import SECURITY_HEADERS, PageError, SignIn, error_page
from hub.findings import Refusal

PREFIX = "/ops"
#: the console's exceptions that end a page: the app answers them with `error_response`
ERRORS = (PageError, SignIn)
STATIC = Path(__file__).parent / "static"


def mount(app: FastAPI) -> None:
    for module in (signin, users, flows, alerts, cases, steering, messages, dead, reviews, audit):
        app.include_router(module.router, prefix=PREFIX, include_in_schema=False)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="console-static")


def is_console(request: Request) -> bool:
    return request.url.path == PREFIX or request.url.path.startswith(PREFIX + "/")


def error_response(request: Request, exc: Exception, answer: Callable[[], tuple[int, dict[str, Any]]]) -> Response:
    """The console's answer to a failure of one of its pages; `answer` is the API's (status, problem)
    for anything that is not the console's own (it logs what is unexpected, and says nothing internal)."""
    if isinstance(exc, SignIn):
        from urllib.parse import urlencode

        return RedirectResponse(f"{PREFIX}/login?{urlencode({'next': exc.next_path})}", status_code=303, headers=SECURITY_HEADERS)
    if isinstance(exc, PageError):
        return error_page(request, exc.status, exc.message)
    if isinstance(exc, Refusal):
        return error_page(request, exc.status, exc.detail)
    status, body = answer()
    return error_page(request, status, str(body.get("detail", "")))

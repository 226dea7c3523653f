"""The HTTP API (`/v1`), health probes and metrics, as named in the public surface.

Errors are RFC 9457 problem+json with a list of findings; nothing internal (no traceback, no other
partner's data) ever reaches a caller. Bodies are read with a hard size limit before any parsing.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from typing import Annotated, Any

import structlog
from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub import __version__
from hub.alerts import gauges
from hub.api import openapi
from hub.api.auth import Caller, TokenCache, authenticate
from hub.api.docs_site import mount_interface_docs
from hub.api.openapi import problems
from hub.api.chain import router as chain_router
from hub.api.reviews import router as review_router
from hub.console import mount as console
from hub.endpoints import ingress
from hub.store import db, message_store
from hub.findings import Finding, Refusal
from hub.store.history import audit
from hub.metrics import count_refused
from hub.partners import Partner
from hub.runtime import Hub
from hub.workers import Workers

log = structlog.get_logger("hub.api")

PROBLEM = "application/problem+json"

#: seconds a 503 asks the caller to wait before sending again
RETRY_AFTER = "5"

DESCRIPTION = """Data-exchange hub for SGB II case chains. Partners submit messages in their own format and
pick up deliveries addressed to them.

Every request carries the partner's bearer token (`Authorization: Bearer <token>`; in this page:
*Authorize*). Errors are `application/problem+json` (RFC 9457) with a list of findings, each with
its location. The contracts (schemas, code lists, partner profiles) are documented at
[/docs/interfaces/](/docs/interfaces/)."""


def error_answer(exc: Exception, path: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, problem+json body, headers) for an exception that ends a request: a Refusal says what
    was wrong; a database that cannot serve right now (db.is_unavailable: connection lost, refused or
    unanswered, pool exhausted) is a 503 with Retry-After -- the partner should send again; anything
    else, including a value the database refuses (sent again, it would fail again), is a 500 that says
    nothing internal and is logged with its traceback."""
    if isinstance(exc, Refusal):
        headers = {"WWW-Authenticate": 'Bearer realm="casechain-hub"'} if exc.status == 401 else {}
        if exc.status == 503:
            headers["Retry-After"] = RETRY_AFTER
        return exc.status, exc.problem(path), headers
    if db.is_unavailable(exc):
        log.error("database unavailable", error=(str(exc).splitlines() or [type(exc).__name__])[0])
        detail = "The hub's database is unavailable; retry later"
        if path == "/v1/messages":
            detail += ". Send the message again with the same message UUID: it is stored once, and if it was stored already the answer is its first id (200)"
        refusal = Refusal("unavailable", detail)
        return refusal.status, refusal.problem(path), {"Retry-After": RETRY_AFTER}
    log.error("unhandled error", path=path, exc_info=exc)
    body = {"type": "about:blank", "title": "Internal error", "status": 500, "detail": "The hub could not process the request; it has been logged."}
    return 500, body, {}


def problem_response(refusal: Refusal, request: Request | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        refusal.problem(str(request.url.path) if request else None), status_code=refusal.status, media_type=PROBLEM, headers=headers
    )


def create_app(hub: Hub, role: str = "all", worker_threads: int = 1) -> FastAPI:
    workers = Workers(hub, role=role, threads=worker_threads) if role in ("all", "api") else None

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        if workers:
            workers.start()
        yield
        if workers:
            await run_in_threadpool(workers.stop)

    app = FastAPI(
        title="CaseChain Hub",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load from a CDN: hub.api.openapi serves /docs from the package
        redoc_url=None,
    )
    app.state.hub = hub
    app.state.tokens = TokenCache(hub.settings.token_cache_seconds)
    mount_interface_docs(app, hub.contracts_dir)  # /docs/interfaces, no token: contracts only, no personal data
    app.include_router(review_router)  # /v1/persons: operators only
    app.include_router(chain_router)  # /v1/tasks, /v1/cases/{ref}/chain: the steering agency, operators
    openapi.install(app)  # /docs without internet, errors documented as problem+json
    console.mount(app)  # /ops: the web console, for people (sessions), not partners (tokens)

    # -- errors ------------------------------------------------------------------------------------
    @app.exception_handler(Refusal)
    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    @app.exception_handler(Exception)
    async def _error(request: Request, exc: Exception) -> Response:
        if console.is_console(request):
            return console.error_response(request, exc, lambda: error_answer(exc, request.url.path)[:2])
        status, body, headers = error_answer(exc, request.url.path)
        return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)

    for kind in console.ERRORS:  # the console's own: a page to read instead, or the sign-in
        app.add_exception_handler(kind, _error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        findings = [Finding(e["msg"], pointer="/" + "/".join(map(str, e["loc"]))) for e in exc.errors()]
        if console.is_console(request):
            where = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in exc.errors())
            return console.error_response(request, exc, lambda: (400, {"detail": where}))
        return problem_response(Refusal("invalid-request", "The request is not valid", findings), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if console.is_console(request):
            return console.error_response(request, exc, lambda: (exc.status_code, {"detail": str(exc.detail)}))
        kind = {404: "not-found", 401: "unauthenticated", 403: "forbidden", 405: "method-not-allowed", 413: "too-large", 415: "unsupported-media-type"}.get(exc.status_code, "malformed")
        refusal = Refusal(kind, str(exc.detail))
        response = problem_response(refusal, request)
        response.status_code = exc.status_code
        return response

    async def read_body(request: Request) -> bytes:
        limit = hub.settings.max_message_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise Refusal("too-large", f"The message exceeds the limit of {limit} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refusal("too-large", f"The message exceeds the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    # -- partner API -------------------------------------------------------------------------------
    @app.post(
        "/v1/messages",
        status_code=202,
        tags=["messages"],
        summary="Submit one message",
        description=openapi.submit_description(hub.settings.max_message_bytes),
        response_model=openapi.Accepted,
        response_description="Taken: stored and on its way to its recipients.",
        responses={
            202: {"headers": {"Location": {"description": "The message's status URL.", "schema": {"type": "string"}}}},
            200: {"model": openapi.Accepted, "description": "A resend of a message UUID already taken: the first message's id; not processed again."},
            **problems(400, 401, 403, 413, 415, 422, 503),
        },
        openapi_extra=openapi.MESSAGE_BODY,
    )
    async def submit(
        request: Request,
        partner: Caller,
        x_correlation_id: Annotated[
            str | None,
            Header(alias="X-Correlation-ID", max_length=64, pattern=ingress.CORRELATION_ID.pattern, description=f"Optional: your own id that ties this message to others of one exchange (default: the header's reference or message UUID); {ingress.CORRELATION_ID_RULE}"),
        ] = None,
    ) -> JSONResponse:
        # requests are answered by MessageIntake (below) with the same functions; this route documents it
        data = await read_body(request)
        status, body, headers = await take_message(hub, partner, data, request.headers.get("content-type"), x_correlation_id)
        return JSONResponse(body, status_code=status, headers=headers)

    @app.post(
        "/v1/validate",
        tags=["messages"],
        summary="Check one message without sending it",
        description=openapi.validate_description(hub.settings.max_message_bytes),
        response_model=openapi.Verdict,
        response_description="The hub would take the message.",
        responses=problems(400, 401, 403, 413, 415, 422, 503),
        openapi_extra=openapi.MESSAGE_BODY,
    )
    async def validate(request: Request, partner: Caller) -> JSONResponse:
        data = await read_body(request)
        head = await ingress.check_async(hub, partner, data, request.headers.get("content-type"))
        verdict = {"valid": True, "message_type": head["message_type"], "version": head["version"], "format": partner.format, "findings": []}
        return JSONResponse(verdict)

    @app.get("/v1/messages/{message_id}", tags=["messages"], summary="Status and history of a message", responses=problems(401, 404, 503))
    def get_message(message_id: str, partner: Caller) -> dict[str, Any]:
        with db.request_deadline(), db.write(hub.engine) as conn:
            view = message_store.message_view(conn, message_id, partner)
            audit(conn, partner.id, "message-read", message_id=message_id)
        return view

    @app.get("/v1/inbox", tags=["inbox"], summary="Deliveries waiting for the caller, oldest first", responses=problems(400, 401, 503))
    def get_inbox(partner: Caller, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
        with db.request_deadline(), db.write(hub.engine) as conn:
            items = message_store.inbox(conn, partner, limit, hub.purposes.legal_basis, lambda fmt: hub.adapter(fmt).spec.get("encoding", "utf-8"))
        return {"deliveries": items, "count": len(items)}

    @app.post("/v1/inbox/{delivery_id}/ack", tags=["inbox"], summary="Acknowledge a delivery (idempotent)", responses=problems(401, 404, 503))
    def ack(delivery_id: str, partner: Caller) -> dict[str, Any]:
        with db.request_deadline(), db.write(hub.engine) as conn:
            return message_store.acknowledge(conn, partner, delivery_id, hub.purposes.legal_basis)

    @app.get("/v1/contracts", tags=["contracts"], summary="The contract catalogue", responses=problems(401, 503))
    def contracts(partner: Caller) -> dict[str, Any]:
        return {"contracts": hub.registry.catalogue}

    @app.get("/v1/contracts/{message_type}/{version}", tags=["contracts"], summary="One contract and its schema files", responses=problems(401, 404, 503))
    def contract(message_type: str, version: str, partner: Caller, format: str | None = None) -> Response:
        if message_type not in hub.registry.types or version not in hub.registry.types[message_type].versions:
            raise Refusal("not-found", f"No contract {message_type} {version}")
        available = {f: c for (t, v, f), c in hub.registry.contracts.items() if t == message_type and v == version}
        if format:
            if format not in available:
                raise Refusal("not-found", f"No {format} schema for {message_type} {version}")
            path = available[format].schema_path
            media = "application/xml" if path.suffix == ".xsd" else "application/schema+json"
            return FileResponse(path, media_type=media, filename=f"{message_type}-{version}-{path.name}")
        mt = hub.registry.types[message_type]
        return JSONResponse(
            {
                "message_type": message_type,
                "version": version,
                "title": mt.title,
                "compatibility": mt.compatibility,
                "changes": mt.versions[version].get("changes"),
                "schemas": {f: f"/v1/contracts/{message_type}/{version}?format={f}" for f in sorted(available)},
            }
        )

    # -- operations --------------------------------------------------------------------------------
    @app.get("/healthz", tags=["operations"], include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    database_probe = Probe(lambda: _db_ok(hub), READY_SECONDS)
    broker_probe = Probe(lambda: hub.transport.ready(), READY_SECONDS)

    @app.get("/readyz", tags=["operations"], include_in_schema=False)
    async def readyz() -> JSONResponse:
        database, broker = await asyncio.gather(database_probe(), broker_probe())
        checks = {"database": database, "broker": broker}
        ok = all(checks.values())
        return JSONResponse({"status": "ready" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    def metrics(authorization: Annotated[str | None, Header()] = None) -> PlainTextResponse:
        expected = hub.settings.metrics_token
        if expected and not hmac.compare_digest((authorization or "").encode(), f"Bearer {expected}".encode()):
            raise Refusal("unauthenticated", "/metrics wants Authorization: Bearer <HUB_METRICS_TOKEN>")
        try:
            gauges.observe(hub)
        except Exception as exc:  # noqa: BLE001 - the database is away: the counters are still worth a scrape
            log.warning("metrics.gauges_failed", error=repr(exc))
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(MessageIntake, hub=hub, tokens=app.state.tokens)
    app.add_middleware(CorrelationMiddleware)
    return app


async def take_message(hub: Hub, partner: Partner, data: bytes, content_type: str | None, correlation_id: str | None) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Accept one message: 202 with its id (200 for a resend of one already taken), or raise.

    `correlation_id` is the X-Correlation-ID header as sent: checked here, where it is read (400)."""
    accepted = await ingress.accept_async(hub, partner, data, content_type, ingress.checked_correlation_id(correlation_id))
    status_url = f"/v1/messages/{accepted.id}"
    body = {"id": accepted.id, "status_url": status_url, "duplicate": not accepted.created}
    return (202 if accepted.created else 200), body, {"Location": status_url}


class MessageIntake:
    """`POST /v1/messages` as a plain ASGI handler in front of FastAPI's router.

    It is the one endpoint under load (every partner message comes through it), and the framework's
    routing, dependency solving, request and response objects cost about a quarter of an accept's CPU.
    Authentication, the body limit, the answers and the problem+json errors are the same functions the
    FastAPI route uses (which stays declared, for the OpenAPI document); every other path passes through.
    """

    def __init__(self, app: Any, hub: Hub, tokens: TokenCache) -> None:
        self.app, self.hub, self.tokens = app, hub, tokens

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/messages" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        partner: Partner | None = None
        try:
            partner = await authenticate(self.hub, self.tokens, headers.get("authorization", ""))
            data = await self._body(headers, receive)
            if data is None:
                return  # the client went away
            status, body, extra = await take_message(self.hub, partner, data, headers.get("content-type"), headers.get("x-correlation-id"))
            media = "application/json"
        except Exception as exc:  # noqa: BLE001 - every failure becomes a problem+json answer
            status, body, extra = error_answer(exc, scope["path"])
            media = PROBLEM
            if isinstance(exc, Refusal) and 400 <= status < 500:  # the message's fault, not the hub's
                count_refused(exc.kind, partner.id if partner else None, exc.message_type, self.hub.registry.types)
        payload = json.dumps(body, separators=(",", ":")).encode()
        out = [(b"content-type", media.encode()), (b"content-length", str(len(payload)).encode())]
        out += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": payload})

    async def _body(self, headers: dict[str, str], receive: Any) -> bytes | None:
        limit = self.hub.settings.max_message_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise Refusal("too-large", f"The message exceeds the limit of {limit} bytes")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise Refusal("too-large", f"The message exceeds the limit of {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


class CorrelationMiddleware:
    """Binds a request id to every log line of the request and echoes it as `X-Request-ID`.

    A plain ASGI middleware: Starlette's BaseHTTPMiddleware (`@app.middleware`) costs a task group
    and a body stream per request, a tenth of an accept's time.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        structlog.contextvars.clear_contextvars()
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
        # a caller's request id goes into every log line: only a plain one is taken, else a new one
        request_id = given if given and ingress.CORRELATION_ID.fullmatch(given) else uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        await self.app(scope, receive, send_with_id)


#: seconds /readyz waits for each check: a probe needs an answer, not a hung request
READY_SECONDS = 3.0


class Probe:
    """A readiness check, answered within `seconds` however long the check itself takes.

    The check runs in its own thread under `db.deadline(seconds)`; not done in time, it counts as
    failed. One runs at a time: while a check hangs (a database or broker that never answers),
    further probes wait for that same one instead of starting more threads.
    """

    def __init__(self, check: Callable[[], bool], seconds: float) -> None:
        self.check, self.seconds = check, seconds
        self._running: Future | None = None
        self._lock = threading.Lock()

    async def __call__(self) -> bool:
        with self._lock:
            if self._running is None or self._running.done():
                self._running = Future()
                threading.Thread(target=self._run, args=(self._running,), name="readyz", daemon=True).start()
            running = self._running
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(running)), self.seconds)
        except TimeoutError:
            return False

    def _run(self, outcome: Future) -> None:
        try:
            with db.deadline(self.seconds):
                outcome.set_result(bool(self.check()))
        except Exception:  # noqa: BLE001 - a check that fails says "not ready"
            outcome.set_result(False)


def _db_ok(hub: Hub) -> bool:
    try:
        with db.read(hub.engine) as conn:
            conn.exec_driver_sql("SELECT 1")
        return True
    except Exception:  # noqa: BLE001
        return False

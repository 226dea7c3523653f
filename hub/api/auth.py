"""Bearer-token authentication of partners: token -> grant -> partner, remembered briefly per process.

Its own module so that the app and the operator endpoints (`reviews`) both depend on it, not on each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

import structlog
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool

from hub.api import openapi
from hub.findings import Refusal
from hub.partners import Grant, Partner, grant_for_token, token_hash
from hub.runtime import Hub
from hub.store import db


class TokenCache:
    """Bearer token -> its Grant, remembered for `token_cache_seconds` (0: ask the database every time).

    Every request is authenticated; asking the database each time cost a reading transaction and a
    thread hop per request. Only the token's hash is kept, and a revocation takes effect within the
    TTL in every process (`hub partners tokens --revoke` says so); an expiry at once, as the grant's
    expiry is checked on every request (`authenticate`).
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        #: seconds, monotonic; injectable so a test lets the TTL pass without waiting for it
        self.clock = clock
        self._known: dict[str, tuple[Grant | None, float]] = {}

    def get(self, token: str) -> tuple[bool, Grant | None]:
        hit = self._known.get(token_hash(token)) if self.ttl > 0 else None
        if hit is None or hit[1] < self.clock():
            return False, None
        return True, hit[0]

    def put(self, token: str, grant: Grant | None) -> None:
        if self.ttl > 0:
            if len(self._known) > 10_000:  # unknown tokens must not grow it without bound
                self._known.clear()
            self._known[token_hash(token)] = (grant, self.clock() + self.ttl)


def _lookup_token(hub: Hub, token: str) -> Grant | None:
    with db.request_deadline(), db.read(hub.engine) as conn:
        return grant_for_token(conn, token)


async def caller(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(openapi.BEARER)] = None) -> Partner:
    """The authenticated partner: bearer token -> partner, or 401. The bearer dependency only declares
    the scheme in the OpenAPI document (Swagger UI's Authorize); `authenticate` reads the header."""
    return await authenticate(request.app.state.hub, request.app.state.tokens, request.headers.get("authorization", ""))


async def authenticate(hub: Hub, cache: TokenCache, header: str) -> Partner:
    """`Authorization: Bearer <token>` -> the partner, or a 401 Refusal; binds the partner to the log context."""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Refusal("unauthenticated", "A bearer token is required (Authorization: Bearer <token>)")
    known, grant = cache.get(token)
    if not known:
        grant = await run_in_threadpool(_lookup_token, hub, token)
        cache.put(token, grant)
    if grant is not None and grant.expired():
        raise Refusal("unauthenticated", "The bearer token has expired; ask the hub's operator for a new one")
    partner = hub.partners.get(grant.partner_id) if grant else None
    if partner is None:
        raise Refusal("unauthenticated", "The bearer token is not valid")
    structlog.contextvars.bind_contextvars(partner=partner.id)
    return partner


Caller = Annotated[Partner, Depends(caller)]

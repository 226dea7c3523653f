"""The interface documentation served by the hub under /docs/interfaces (FastAPI's Swagger UI is /docs).

The pages are the ones `hub contracts docs` writes, rendered from the hub's own contracts directory on
the first request into a private temporary directory and served statically from there. Rendering
lazily keeps app start-up (and every test that builds an app) free of schema introspection.

No token is needed: the pages describe contracts (schemas, code lists, partner profiles with their
functional mailboxes, purposes and their legal basis) and contain no personal or case data. Integrators
need them before they have credentials, as with any published XÖV standard.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

PATH = "/docs/interfaces"

#: the pages are self-contained (one embedded stylesheet, no scripts, no images, no forms)
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "public, max-age=300",
}


class InterfaceDocs:
    """ASGI app: renders the documentation once (first request), then serves the files."""

    def __init__(self, contracts_dir: Path) -> None:
        self.contracts_dir = Path(contracts_dir)
        self._lock = threading.Lock()
        self._static: StaticFiles | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None  # removed with this object

    def render(self) -> StaticFiles:
        from hub.interface.docs import render_docs

        with self._lock:
            if self._static is None:
                target = tempfile.TemporaryDirectory(prefix="hub-interface-docs-")
                render_docs(self.contracts_dir, Path(target.name))
                self._dir, self._static = target, StaticFiles(directory=target.name, html=True)
        return self._static

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        static = self._static or await run_in_threadpool(self.render)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await static(scope, receive, send_with_headers)


def mount_interface_docs(app: FastAPI, contracts_dir: Path, path: str = PATH) -> InterfaceDocs:
    """Serve the interface documentation of `contracts_dir` under `path` (no authentication)."""
    docs = InterfaceDocs(contracts_dir)
    app.mount(path, docs, name="interface-docs")
    return docs

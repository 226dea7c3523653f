"""`hub serve` starting and stopping within bounds.

Starting: the port is tried before anything else starts (migrations, workers, the banner), so a taken
port is one sentence and exit 1 instead of a started hub that dies with uvicorn's exit 3.

Stopping (SIGTERM or Ctrl-C), within `HUB_SHUTDOWN_TIMEOUT` seconds in all:

1. uvicorn stops accepting and gives in-flight requests all of the bound but a reserve
   (`graceful_seconds`) to finish; then it cancels them. A cancelled accept either had its write
   taken by the group commit (committed whole) or never will (hub.ingress).
2. The lifespan stops the worker threads within what is left (`Watchdog.remaining`); each pipeline
   batch is one transaction, committed or rolled back.
3. What a cancelled request had started in a thread (a long validation, say) still runs: Python
   would wait for it at exit (asyncio joins its default executor, the interpreter every executor
   thread), so the process does not wait. Such work has nothing half-written to lose: its
   transaction, if any, is rolled back by the database when the process ends.
4. Should any of this hang (a database that never answers), the watchdog, armed by the first
   signal, logs an error and ends the process with exit 1 when the bound is up.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import Any

import structlog

log = structlog.get_logger("hub.shutdown")

#: exit code of a shutdown the watchdog had to end (surface.md: 1, something was refused or failed)
CUT_OFF = 1
#: seconds of the bound kept back from in-flight requests for stopping the workers (at most half)
WORKER_RESERVE = 5.0


class PortUnavailable(Exception):
    """The configured host and port cannot be listened on; the message is one sentence."""


def check_port(host: str, port: int) -> None:
    """Raise PortUnavailable unless `host`:`port` can be listened on right now.

    Bound as uvicorn binds it (same address family, SO_REUSEADDR: a port in TIME_WAIT is free) and
    closed again at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except socket.gaierror:
        raise PortUnavailable(f"cannot listen on {host}: the host name does not resolve") from None
    except OSError as exc:
        raise PortUnavailable(_why(exc, host, port)) from None


def _why(exc: OSError, host: str, port: int) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use (another hub or program listens there; choose one with --port)"
    if exc.errno == errno.EACCES:
        return f"no permission to listen on port {port} on {host} (ports below 1024 need privileges)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {host}: it is not an address of this machine"
    return f"cannot listen on port {port} on {host}: {exc.strerror or exc}"


def graceful_seconds(bound: float) -> float:
    """The part of the shutdown bound in-flight requests get; the rest is for the workers."""
    return bound - min(WORKER_RESERVE, bound / 2)


class Watchdog:
    """Ends the process, logged, when a shutdown takes longer than its bound.

    Armed once, by the first shutdown signal; later signals do not extend the bound."""

    def __init__(self) -> None:
        self._deadline: float | None = None
        self._lock = threading.Lock()

    def arm(self, seconds: float) -> None:
        with self._lock:
            if self._deadline is not None:
                return
            self._deadline = time.monotonic() + seconds
        threading.Thread(target=self._watch, args=(seconds,), name="shutdown-watchdog", daemon=True).start()

    def remaining(self) -> float | None:
        """Seconds until the watchdog ends the process, or None while no shutdown is under way."""
        deadline = self._deadline
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def _watch(self, seconds: float) -> None:
        time.sleep(seconds)
        still = sorted(t.name for t in threading.enumerate() if t.is_alive() and t is not threading.current_thread())
        log.error("shutdown.timeout: the hub did not stop within HUB_SHUTDOWN_TIMEOUT; exiting without waiting", seconds=seconds, threads=still)
        flush()
        os._exit(CUT_OFF)


WATCHDOG = Watchdog()


def flush() -> None:
    """What the interpreter would flush at exit, for an exit that skips it."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def arm_on_shutdown_signals(bound: float) -> None:
    """Arm the watchdog on SIGTERM/SIGINT, then let the handler in place (uvicorn's) do its part.

    For `hub serve --workers N`: each worker process runs uvicorn's own server, whose handlers are
    installed before the app is built; call this from the main thread while building it."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(signum: int, frame: FrameType | None, previous: Callable[..., Any] = previous) -> None:
            WATCHDOG.arm(bound)
            previous(signum, frame)

        signal.signal(sig, handler)


def serve(app: Any, host: str, port: int, bound: float, **options: Any) -> bool:
    """Run `app` with uvicorn until a shutdown signal; True if it served (False: it could not start).

    As uvicorn.run, but the shutdown keeps to `bound` seconds (module docstring) and ends with
    exit code 0: uvicorn raises a signal it handled again once it is done (so that the default
    action, dying of it, follows); the handlers it hands it to here only note that it is handled."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            WATCHDOG.arm(bound)
            super().handle_exit(sig, frame)

    config = uvicorn.Config(CutOffAnswer(app), host=host, port=port, timeout_graceful_shutdown=graceful_seconds(bound), **options)
    server = Server(config)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _handled)
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(_serve(server))
    return server.started


class CutOffAnswer:
    """ASGI wrapper: a request that uvicorn cancels at the end of the graceful shutdown is answered
    503 with Retry-After (send it again, same message UUID) and logged in one line, instead of a
    closed connection and uvicorn's traceback of the cancellation."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        started = False

        async def tracked(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            if WATCHDOG.remaining() is None or scope["type"] != "http":
                raise  # not ours: a shutdown cancels, nothing else here does
            log.warning("shutdown.cut_off: request cancelled at the end of the graceful shutdown", path=scope.get("path"))
            if not started:
                await _unavailable(tracked, scope.get("path"))


async def _unavailable(send: Any, path: str | None) -> None:
    import json

    from hub.findings import Refusal

    refusal = Refusal("unavailable", "The hub is shutting down; send the request again shortly (a message with the same message UUID is stored once)")
    body = json.dumps(refusal.problem(path)).encode()
    headers = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode()), (b"retry-after", b"5"), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _handled(signum: int, frame: FrameType | None) -> None:
    """A shutdown signal raised again after uvicorn's shutdown, or one during the last steps: the
    shutdown is under way (and bounded by the watchdog)."""


async def _serve(server: Any) -> None:
    """`server.serve()` with the requests' threads in an executor of their own, which asyncio.Runner
    then does not join at its close (a thread of a cancelled request may run for a long while)."""
    loop = asyncio.get_running_loop()
    requests = ThreadPoolExecutor(thread_name_prefix="hub-request")
    loop.set_default_executor(requests)
    try:
        await server.serve()
    finally:
        requests.shutdown(wait=False, cancel_futures=True)
        loop.set_default_executor(ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-shutdown"))


def exit_without_waiting_for_abandoned_work() -> None:
    """After a finished shutdown: end the process now if threads of cancelled requests still run.

    The interpreter would wait for them at exit; their work has nothing to commit any more (their
    requests were answered by a closed connection; partners send again, same message UUID)."""
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    settle = time.monotonic() + 0.5  # idle pool threads are told to end and do so at once
    for thread in others:
        thread.join(max(0.0, settle - time.monotonic()))
    busy = sorted(t.name for t in others if t.is_alive())
    if not busy:
        return
    log.warning("shutdown.abandoned: work of requests cut off at the graceful timeout is not waited for", threads=busy)
    flush()
    os._exit(0)

"""`hub serve`, `hub worker`, `hub demo`: the commands that run the hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from hub.config import get_settings, reset_settings
from hub.cli.base import _checked, _hub, app, fail


# -- serve / worker / demo ------------------------------------------------------------------------------
@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    role: Annotated[str, typer.Option(help="all: API and workers; api: API only (scale-out).")] = "all",
    threads: Annotated[int, typer.Option(help="Pipeline worker threads in this process.")] = 1,
    workers: Annotated[int, typer.Option("--workers", help="API processes (uvicorn workers) sharing the port; each runs its own relay/workers per --role.")] = 1,
) -> None:
    """Run the API (and, with --role all, the pipeline and delivery workers).

    Stops within HUB_SHUTDOWN_TIMEOUT seconds of SIGTERM or Ctrl-C (hub.shutdown)."""
    import os

    import uvicorn

    from hub import shutdown
    from hub.api.app import create_app

    if role not in ("all", "api"):
        fail("--role must be 'all' or 'api' (use `hub worker` for worker-only processes)", 2)
    if workers < 1:
        fail("--workers must be at least 1", 2)
    try:
        shutdown.check_port(host, port)  # before anything starts: no banner, migrations or workers for nothing
    except shutdown.PortUnavailable as exc:
        fail(str(exc))
    hub = _checked(_hub())
    bound = hub.settings.shutdown_timeout
    typer.echo(f"CaseChain Hub on http://{host}:{port}  (database {hub.engine.url.render_as_string(hide_password=True)}, broker {hub.transport.name}, role {role}, processes {workers})", err=True)
    options: dict[str, Any] = {"log_level": "warning", "access_log": False}
    if workers == 1:
        served = shutdown.serve(create_app(hub, role=role, worker_threads=threads), host, port, bound, **options)
        hub.close()  # the group commit finishes what it has taken
        if not served:
            fail(f"could not listen on port {port} on {host} (see the log above)")
        shutdown.exit_without_waiting_for_abandoned_work()
        return
    # several processes: uvicorn imports the app factory in each of them (migrations ran above, once)
    os.environ["HUB_SERVE_ROLE"], os.environ["HUB_SERVE_THREADS"] = role, str(threads)
    uvicorn.run(
        "hub.cli.running:asgi_app", factory=True, workers=workers, host=host, port=port,
        timeout_graceful_shutdown=shutdown.graceful_seconds(bound), **options,
    )


def asgi_app():  # type: ignore[no-untyped-def]
    """App factory for `hub serve --workers N` (one call per uvicorn worker process)."""
    import os

    from hub import shutdown
    from hub.api.app import create_app

    reset_settings()
    hub = _hub(migrate=False)
    shutdown.arm_on_shutdown_signals(hub.settings.shutdown_timeout)
    return create_app(hub, role=os.environ.get("HUB_SERVE_ROLE", "all"), worker_threads=int(os.environ.get("HUB_SERVE_THREADS", "1")))


@app.command()
def worker(
    role: Annotated[str, typer.Option(help="pipeline, delivery or all.")] = "all",
    threads: Annotated[int, typer.Option(help="Consumer threads.")] = 1,
    heartbeat_file: Annotated[Optional[Path], typer.Option(help="Touch this file every 5 s while all worker threads live (container health checks).")] = None,
) -> None:
    """Run workers only (competing consumers), beside `hub serve --role api`."""
    import signal
    import threading

    from hub.workers import Workers

    if role not in ("all", "pipeline", "delivery"):
        fail("--role must be pipeline, delivery or all", 2)
    hub = _checked(_hub())
    workers = Workers(hub, role=role, threads=threads)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    workers.start()
    while not done.wait(5.0):
        if heartbeat_file is not None and workers.alive():
            heartbeat_file.touch()
    workers.stop(hub.settings.shutdown_timeout)


@app.command()
def demo(
    verbose: Annotated[bool, typer.Option("--verbose", help="Show the hub's log lines on stderr instead of writing them to the demo's log file.")] = False,
) -> None:
    """Set up the demo partners, run one case chain through the running code paths, print what flowed where."""
    from hub.demo import log_file, run_demo

    log_to = None if verbose else log_file(get_settings())
    run_demo(_hub(log_to=log_to), log_to)

"""The `hub` command line (surface.md). Exit codes: 0 success, 1 input refused, 2 usage error.

Errors are one clear sentence on stderr; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from hub.config import get_settings, reset_settings

app = typer.Typer(help="CaseChain Hub: data exchange for SGB II case chains.", no_args_is_help=True, pretty_exceptions_enable=False)
contracts_app = typer.Typer(help="The contract catalogue: list, validate, check, document.", no_args_is_help=True)
partners_app = typer.Typer(help="Partners and their credentials.", no_args_is_help=True)
messages_app = typer.Typer(help="Message history, replay and dead letters.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
dedup_app = typer.Typer(help="Person matching: batch linkage and the master person index's review queue.", no_args_is_help=True)
cases_app = typer.Typer(help="Case chains: the cases and each partner's own reference for them.", no_args_is_help=True)
app.add_typer(contracts_app, name="contracts")
app.add_typer(partners_app, name="partners")
app.add_typer(messages_app, name="messages")
app.add_typer(db_app, name="db")
app.add_typer(dedup_app, name="dedup")
app.add_typer(cases_app, name="cases")


def _mount_batch_linkage() -> None:
    """`hub dedup batch`: the batch linkage command lives with the engine, in hub.dedup.batch."""
    from hub.dedup.batch import batch

    dedup_app.command("batch", help=batch.__doc__)(batch)


_mount_batch_linkage()

STATE: dict[str, Any] = {"debug": False}


def fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _hub(migrate: bool = True, log_to: Path | None = None):  # type: ignore[no-untyped-def]
    from hub import logs
    from hub.runtime import Hub

    settings = get_settings()
    logs.configure(settings.log_format, settings.log_level, to=log_to)
    hub = Hub(settings)
    if migrate and settings.auto_migrate:
        hub.migrate()
    return hub


def _print(data: Any, as_json: bool, text: str | None = None) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    elif text is not None:
        typer.echo(text)


@app.callback()
def main_callback(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False) -> None:
    STATE["debug"] = debug
    reset_settings()


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
    hub = _hub()
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
        "hub.cli:asgi_app", factory=True, workers=workers, host=host, port=port,
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
    hub = _hub()
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


# -- contracts ----------------------------------------------------------------------------------------
@contracts_app.command("list")
def contracts_list(as_json: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False) -> None:
    """List message types, versions and formats."""
    hub = _hub(migrate=False)
    catalogue = hub.registry.catalogue
    lines = [
        f"{c['message_type']:34} {v:5} {', '.join(fmts):28} {c['compatibility']:10} {c['title']}"
        for c in catalogue
        for v, fmts in c["versions"].items()
    ]
    _print(catalogue, as_json, "\n".join(lines))


@contracts_app.command("validate")
def contracts_validate(
    file: Annotated[Path, typer.Argument(help="A message file (XML or JSON); type and version are read from it.")],
    as_json: Annotated[bool, typer.Option("--json", help="Findings as JSON.")] = False,
) -> None:
    """Validate a message file against its contract; findings at line/column or JSON pointer."""
    from hub.findings import Findings, Refusal
    from hub.endpoints.validate import validate_file

    hub = _hub(migrate=False)
    if not file.is_file():
        fail(f"{file} is not a readable file", 2)
    try:
        contract, findings = validate_file(hub, file.read_bytes())
    except Refusal as refusal:
        if as_json:
            _print({"file": str(file), "valid": False, "problem": refusal.kind, "detail": refusal.detail, "findings": [f.as_dict() for f in refusal.findings]}, True)
        else:
            typer.echo(f"{file}: {refusal.one_line()}", err=True)
        raise typer.Exit(1)
    name = contract
    if as_json:
        _print({"file": str(file), "contract": name, "valid": not findings, "findings": [f.as_dict() for f in findings]}, True)
    elif findings:
        for f in findings:
            typer.echo(f"{file}:{f.location}: {f.message}" if f.location else f"{file}: {f.message}")
        count = findings.summary() if isinstance(findings, Findings) else f"{len(findings)} finding(s)"
        typer.echo(f"{file}: INVALID against {name}: {count}", err=True)
    else:
        typer.echo(f"{file}: valid against {name}")
    raise typer.Exit(1 if findings else 0)


@contracts_app.command("check")
def contracts_check() -> None:
    """Check every contract: examples validate and round-trip; versions keep their compatibility level."""
    from hub.endpoints.validate import check_contracts

    problems = check_contracts(_hub(migrate=False))
    for p in problems:
        typer.echo(p)
    if problems:
        fail(f"{len(problems)} contract problem(s)")
    typer.echo("all contracts check out")


@contracts_app.command("docs")
def contracts_docs(out: Annotated[Path, typer.Option("--out", help="Directory for the HTML pages (created if missing).")]) -> None:
    """Render the interface documentation (Schnittstellendokumentation) as static HTML."""
    from hub.interface.docs import render_docs

    if out.exists() and not out.is_dir():
        fail(f"{out} exists and is not a directory", 2)
    try:
        pages = render_docs(get_settings().contracts_dir, out)
    except OSError as exc:
        fail(f"cannot write the documentation to {out}: {exc.strerror or exc}")
    typer.echo(f"{len(pages)} pages written to {out} (start at {out / 'index.html'})")


# -- partners ----------------------------------------------------------------------------------------
@partners_app.command("list")
def partners_list(as_json: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False) -> None:
    """List registered partners."""
    hub = _hub(migrate=False)
    rows = [
        {"id": p.id, "name": p.name, "role": p.role, "format": p.format, "version": p.version, "delivery": p.delivery}
        for p in hub.partners.values()
    ]
    _print(rows, as_json, "\n".join(f"{r['id']:26} {r['role']:10} {r['format']:14} {r['version']:5} {r['name']}" for r in rows))


def _formats() -> str:
    """The formats of the contracts directory (contracts/formats/*.yaml), for help and errors."""
    from hub.adapters import format_names

    return ", ".join(sorted(format_names(get_settings().contracts_dir)))


@partners_app.command("add")
def partners_add(
    partner_id: Annotated[str, typer.Argument(help="Partner id (Kennung).")],
    name: Annotated[str, typer.Option(help="Display name.")],
    role: Annotated[str, typer.Option(help="jobcenter, municipal, provider or operator.")],
    format: Annotated[str, typer.Option(help=f"The partner's message format: {_formats()}.")] = "provider-json",
    version: Annotated[str, typer.Option(help="Contract version the partner speaks.")] = "1.0",
) -> None:
    """Add a partner profile under contracts/partners/ (review and commit it like any contract)."""
    import re

    from hub.adapters import format_names
    from hub.partners import ROLES, write_profile

    hub = _hub(migrate=False)
    if role not in ROLES:
        fail(f"--role must be one of {', '.join(ROLES)}", 2)
    if role != "operator" and format not in format_names(hub.contracts_dir):
        fail(f"--format must be one of {_formats()}", 2)
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{1,39}", partner_id):
        fail("the partner id must be 2-40 characters of a-z, 0-9, '.', '_' or '-'", 2)
    purposes, sends, receives = _role_defaults(hub, role)
    data = {
        "id": partner_id, "name": name, "role": role, "format": format if role != "operator" else "none",
        "version": version, "delivery": "inbox" if role != "operator" else "none",
        "purposes": purposes, "sends": sends, "receives": receives,
    }
    try:
        path = write_profile(hub.contracts_dir, data)
    except FileExistsError as exc:
        fail(str(exc))
    typer.echo(f"added {partner_id} ({path}); issue a token with: hub partners token {partner_id}")


def _role_defaults(hub, role: str) -> tuple[list[str], list[str], list[str]]:  # type: ignore[no-untyped-def]
    """What a new partner of `role` may send and receive, read off the routing rules (data)."""
    from fnmatch import fnmatchcase

    if role == "operator":
        return [], [], []
    types = sorted(hub.registry.types)
    sends: set[str] = set()
    receives: set[str] = {"administration.quittung.0020", "administration.rueckweisung.0010"}
    purposes: set[str] = {"administration"}
    for route in hub.routes.routes:
        matching = {t for t in types if fnmatchcase(t, route.message_type)}
        if route.sender_role in (None, role):
            sends |= matching
        targeted = (
            (route.to == "reader" and route.reader_role in (None, role))
            or (route.to == "case_owner" and role == "jobcenter")
            or (route.to == "case_members" and route.member_role in (None, role))
        )
        if targeted:
            receives |= matching
            purposes.add(route.purpose)
    return sorted(purposes), sorted(sends - {"administration.quittung.0020", "administration.rueckweisung.0010"}), sorted(receives)


@partners_app.command("token")
def partners_token(
    partner_id: Annotated[str, typer.Argument(help="Partner id.")],
    expires_in: Annotated[int, typer.Option("--expires-in", metavar="DAYS", min=1, max=3650, help="Days until the new token expires (default: a year, one planned rotation a year).")] = 365,
    revoke: Annotated[bool, typer.Option("--revoke", help="Revoke all of the partner's tokens instead (one: `hub partners tokens --revoke ID`).")] = False,
) -> None:
    """Issue a new bearer token for a partner (printed once; only its hash is stored).

    It expires after --expires-in days; `hub partners tokens PARTNER` lists a partner's tokens."""
    import datetime as dt

    from hub.store import db
    from hub.store.history import audit
    from hub.partners import TOKEN_ID_LENGTH, issue_token, revoke_tokens, token_hash

    hub = _hub()
    if partner_id not in hub.partners:
        fail(f"no partner {partner_id!r}; see `hub partners list`")
    with db.write(hub.engine) as conn:
        if revoke:
            count = revoke_tokens(conn, partner_id)
            audit(conn, "cli", "tokens-revoked", partner=partner_id, count=count)
            typer.echo(f"revoked {count} token(s) of {partner_id} ({_refused_within()})")
            return
        token = issue_token(conn, partner_id, dt.timedelta(days=expires_in))
        token_id = token_hash(token)[:TOKEN_ID_LENGTH]
        audit(conn, "cli", "token-issued", partner=partner_id, token=token_id, days=expires_in)
    typer.echo(token)
    expires = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=expires_in)).strftime("%Y-%m-%d")
    typer.echo(f"token {token_id} of {partner_id} expires {expires} ({expires_in} days); list or revoke: hub partners tokens {partner_id}", err=True)


def _refused_within() -> str:
    """How soon running hubs refuse a revoked token (they remember verified tokens that long)."""
    seconds = get_settings().token_cache_seconds
    return f"running hubs refuse it within {seconds:g} s (HUB_TOKEN_CACHE_SECONDS)" if seconds > 0 else "running hubs refuse it at once"


@partners_app.command("tokens")
def partners_tokens(
    partner_id: Annotated[str, typer.Argument(help="Partner id.")],
    revoke: Annotated[Optional[str], typer.Option("--revoke", metavar="ID", help="Revoke the token with this id (from the listing) instead of listing.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """List a partner's tokens (id, created, expires, revoked; never the token), or revoke one.

    The id is the start of the token's stored SHA-256, so it names a token without revealing it."""
    from hub.store import db
    from hub.store.history import audit
    from hub.partners import list_tokens, revoke_token

    hub = _hub()
    if partner_id not in hub.partners:
        fail(f"no partner {partner_id!r}; see `hub partners list`")
    if revoke is not None:
        with db.write(hub.engine) as conn:
            if not revoke_token(conn, partner_id, revoke):
                fail(f"no token {revoke} of partner {partner_id}; see `hub partners tokens {partner_id}`")
            audit(conn, "cli", "token-revoked", partner=partner_id, token=revoke)
        _print({"partner": partner_id, "id": revoke, "revoked": True}, as_json, f"revoked token {revoke} of {partner_id}; {_refused_within()}")
        return
    with db.read(hub.engine) as conn:
        rows = list_tokens(conn, partner_id)

    def when(value: str | None, none: str) -> str:
        return value[:16].replace("T", " ") if value else none

    lines = [f"{'ID':12}  {'CREATED':16}  {'EXPIRES':16}  STATUS"] + [
        f"{r['id']:12}  {when(r['created'], '')}  {when(r['expires'], 'never'):16}  {r['status']}" + (f" {when(r['revoked'], '')}" if r["revoked"] else "")
        for r in rows
    ]
    _print(rows, as_json, "\n".join(lines) if rows else f"{partner_id} has no tokens; issue one with: hub partners token {partner_id}")


@partners_app.command("amqp-setup")
def partners_amqp_setup(
    partner_id: Annotated[str, typer.Argument(help="Partner id.")],
    user: Annotated[Optional[str], typer.Option(help="RabbitMQ user name (default: hub-partner-<id>).")] = None,
    password: Annotated[Optional[str], typer.Option(help="Password (default: a new random one, printed once).")] = None,
    management_url: Annotated[Optional[str], typer.Option(help="RabbitMQ management API (default: HUB_AMQP_MANAGEMENT_URL or the broker's host, port 15672).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Output the user, queue and permissions (and a new password) as JSON.")] = False,
) -> None:
    """Give a partner its own RabbitMQ queue and a broker user that can only read that queue.

    Declares the hub's topology and `<prefix>partner.<id>`, creates (or updates) the user through the
    management HTTP API (or `rabbitmqctl` on the broker host) with permissions configure "^$",
    write "^$", read "^<queue>$" on the hub's vhost. Set `delivery: amqp` in the partner's profile so
    the outbox relay (a thread in every hub process) pushes its deliveries there instead of keeping
    them in the HTTP inbox.
    """
    import re
    import secrets

    import pika.exceptions

    from hub.transport.amqp import AmqpTransport, setup_partner_user

    hub = _hub(migrate=False)
    if partner_id not in hub.partners:
        fail(f"no partner {partner_id!r}; see `hub partners list`")
    transport = hub.transport
    if not isinstance(transport, AmqpTransport):
        fail("HUB_BROKER_URL is not an amqp:// URL; partner queues need RabbitMQ", 2)
    user = user or f"hub-partner-{partner_id}"
    generated = password is None
    password = password or secrets.token_urlsafe(24)
    wait = 5.0  # an operator's command gives up after a few seconds; the workers retry for as long as they run
    try:
        transport.declare_all([partner_id], give_up_after=wait)
    except (pika.exceptions.AMQPConnectionError, ConnectionError, OSError) as exc:
        fail(f"could not connect to RabbitMQ at {transport.address} (vhost {transport.vhost!r}) within {wait:g} s ({type(exc).__name__}); is it running, and is HUB_BROKER_URL right?")
    queue = transport.topology.partner_queue(partner_id)
    permissions = {"configure": "^$", "write": "^$", "read": f"^{re.escape(queue)}$"}
    how = setup_partner_user(transport, user, password, permissions, management_url or hub.settings.amqp_management_url)
    profile = hub.partners[partner_id].delivery
    result = {"partner": partner_id, "user": user, "vhost": transport.vhost, "queue": queue, "permissions": permissions, "via": how}
    if generated:
        result["password"] = password
    text = [f"partner {partner_id}: RabbitMQ user {user!r} may read only queue {queue!r} on vhost {transport.vhost!r} (set up via {how})"]
    if generated:
        text.append(f"password (shown once): {password}")
    if profile != "amqp":
        text.append(f"note: its profile says delivery: {profile}; set delivery: amqp to have deliveries pushed to the queue")
    _print(result, as_json, "\n".join(text))


# -- messages ----------------------------------------------------------------------------------------
@messages_app.command("show")
def messages_show(
    message_id: Annotated[str, typer.Argument(help="The message's id (as answered by POST /v1/messages).")],
    as_json: Annotated[bool, typer.Option("--json", help="Output status and history as JSON.")] = False,
) -> None:
    """A message's status and full history."""
    from hub.store import db
    from hub.store import message_store
    from hub.findings import Refusal

    hub = _hub()
    try:
        with db.read(hub.engine) as conn:
            view = message_store.message_view(conn, message_id, None)
    except Refusal as refusal:
        fail(refusal.detail)
    lines = [f"{view['id']}  {view['message_type']} {view['version']} from {view['sender']}  status: {view['status']}"]
    for e in view["history"]:  # the entry in words; --json has every field
        lines.append(f"  {e['at']}  {e['stage']:>10}.{e['event']:<12} {e['detail']['text']}")
    _print(view, as_json, "\n".join(lines))


@messages_app.command("replay")
def messages_replay(message_id: Annotated[str, typer.Argument(help="The id of the dead or rejected message.")]) -> None:
    """Run a dead (or rejected) message through the pipeline again, or push its dead deliveries again."""
    from hub.store import db
    from hub.store import message_store
    from hub.findings import Refusal

    hub = _hub()
    try:
        with db.write(hub.engine) as conn:
            answer = message_store.replay(conn, message_id, "cli", hub.transport)
    except Refusal as refusal:
        fail(refusal.detail)
    if answer.get("deliveries"):
        typer.echo(f"{message_id}: {len(answer['deliveries'])} dead deliveries queued for their push again")
    else:
        typer.echo(f"{message_id} queued for the pipeline again")


@messages_app.command("dead")
def messages_dead(as_json: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False) -> None:
    """List dead letters waiting for an operator."""
    from hub.store import db
    from hub.store import message_store

    hub = _hub()
    with db.read(hub.engine) as conn:
        rows = message_store.dead_list(conn)
    _print(rows, as_json, "\n".join(f"{r['at']}  {r['message_id']}  {r['queue']}  {r['reason']}" for r in rows) or "no dead letters")


# -- cases ---------------------------------------------------------------------------------------------
@cases_app.command("list")
def cases_list(
    partner: Annotated[Optional[str], typer.Option(help="Only the cases this partner belongs to, under its own reference.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the references (of --partner), newest first.")] = False,
    limit: Annotated[int, typer.Option(help="How many cases, newest first.", min=1, max=10_000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """The newest cases, with every member's own reference for each (a provider's is its pseudonymous case id)."""
    from hub.chain import membership as chain
    from hub.store import db

    hub = _hub()
    if partner is not None and partner not in hub.partners:
        fail(f"no partner {partner!r}; see `hub partners list`", 2)
    if quiet and partner is None:
        fail("--quiet prints one partner's references: name it with --partner", 2)
    with db.read(hub.engine) as conn:
        rows = chain.listing(conn, partner, limit)
    if quiet:
        typer.echo("\n".join(r["references"][partner] for r in rows))
        return
    lines = [
        f"{r['id']}  opened {r['opened_at'][:16].replace('T', ' ')}  owner {r['owner']}  "
        + ", ".join(f"{p}: {ref}" for p, ref in sorted(r["references"].items()) if partner in (None, p))
        for r in rows
    ]
    _print(rows, as_json, "\n".join(lines) or "no cases")


# -- dedup: the master person index (operators) -------------------------------------------------------
def _person_index(hub):  # type: ignore[no-untyped-def]
    if hub.person_index is None:
        fail("no master person index is configured (contracts/dedup/model.json)")
    return hub.person_index


def _operator_call(action, *args) -> Any:  # type: ignore[no-untyped-def]
    from hub.store import db
    from hub.findings import Refusal
    from hub.store.history import audit

    hub = _hub()
    index = _person_index(hub)
    try:
        with db.write(hub.engine) as conn:
            result = action(index, conn, *args)
            audit(conn, "cli", f"person-index-{action.__name__}", detail=[str(a) for a in args])
            return result
    except Refusal as refusal:
        fail(refusal.detail)


@dedup_app.command("reviews")
def dedup_reviews(
    status: Annotated[str, typer.Option(help="open, confirmed or rejected.")] = "open",
    as_json: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """Uncertain matches waiting for an operator."""

    def reviews(index, conn):  # type: ignore[no-untyped-def]
        return index.reviews(conn, status)

    rows = _operator_call(reviews)
    lines = [
        f"{r['id']}  weight {r['weight']:6.1f}  {r['record'].get('given_name', '')} {r['record'].get('family_name', '')} "
        f"({r['record'].get('birth_date', '?')}, {r['record']['partner']})  ~  {r['candidate'].get('given_name', '')} "
        f"{r['candidate'].get('family_name', '')} ({r['candidate'].get('birth_date', '?')}, person {r['candidate']['person_id']})"
        for r in rows
    ]
    _print(rows, as_json, "\n".join(lines) or f"no {status} reviews")


@dedup_app.command("confirm")
def dedup_confirm(review_id: Annotated[str, typer.Argument(help="The review's id (see `hub dedup reviews`).")]) -> None:
    """Same person: merge the record's person into the candidate."""

    def confirm(index, conn, rid):  # type: ignore[no-untyped-def]
        return index.decide(conn, rid, True, "cli")

    _operator_call(confirm, review_id)
    typer.echo(f"review {review_id} confirmed: merged")


@dedup_app.command("reject")
def dedup_reject(review_id: Annotated[str, typer.Argument(help="The review's id (see `hub dedup reviews`).")]) -> None:
    """Different persons: keep them apart."""

    def reject(index, conn, rid):  # type: ignore[no-untyped-def]
        return index.decide(conn, rid, False, "cli")

    _operator_call(reject, review_id)
    typer.echo(f"review {review_id} rejected: kept apart")


@dedup_app.command("person")
def dedup_person(
    person_id: Annotated[str, typer.Argument(help="The person's id in the master person index.")],
    as_json: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False,
) -> None:
    """A person: records, id cross-reference and history of merges."""

    def person(index, conn, pid):  # type: ignore[no-untyped-def]
        return index.person(conn, pid)

    view = _operator_call(person, person_id)
    lines = [f"person {view['id']}" + (f" (merged into {view['merged_into']})" if view["merged_into"] else "")]
    lines += [f"  {x['partner']:24} {x['local_id']}" for x in view["xref"]]
    lines += [f"  {e['at']}  {e['action']}  {e.get('other') or ''}" for e in view["history"]]
    _print(view, as_json, "\n".join(lines))


@dedup_app.command("unmerge")
def dedup_unmerge(person_id: Annotated[str, typer.Argument(help="The id of the person that was merged into another.")]) -> None:
    """Undo the merge of PERSON_ID into another person: its records go back to it."""

    def unmerge(index, conn, pid):  # type: ignore[no-untyped-def]
        return index.unmerge(conn, pid, "cli")

    _operator_call(unmerge, person_id)
    typer.echo(f"person {person_id} unmerged")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database schema to the newest version (Alembic)."""
    hub = _hub(migrate=False)
    hub.migrate()
    typer.echo(f"database at {hub.engine.url.render_as_string(hide_password=True)} is up to date")


def main() -> None:
    """Console entry point: one sentence per error unless --debug."""
    debug = "--debug" in sys.argv
    try:
        result = app(standalone_mode=False)  # click returns the exit code of typer.Exit here
        sys.exit(result if isinstance(result, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the single place where errors become sentences
        # typer vendors click in recent versions; duck-type its exceptions rather than import them
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        if debug:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        typer.echo(f"error: {first} (run with --debug for details)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()

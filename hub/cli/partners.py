"""`hub partners ...`: partner profiles, their bearer tokens and their own broker queues."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from hub.config import get_settings
from hub.cli.base import _hub, _print, fail, operator, partners_app


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
    purposes, sends, receives = hub.routes.defaults_for(role, hub.registry.types)
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
            audit(conn, operator(), "tokens-revoked", partner=partner_id, count=count)
            typer.echo(f"revoked {count} token(s) of {partner_id} ({_refused_within()})")
            return
        token = issue_token(conn, partner_id, dt.timedelta(days=expires_in))
        token_id = token_hash(token)[:TOKEN_ID_LENGTH]
        audit(conn, operator(), "token-issued", partner=partner_id, token=token_id, days=expires_in)
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
            audit(conn, operator(), "token-revoked", partner=partner_id, token=revoke)
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
    import secrets

    from hub.transport.amqp import AmqpTransport, BrokerUnreachable, provision_partner

    hub = _hub(migrate=False)
    if partner_id not in hub.partners:
        fail(f"no partner {partner_id!r}; see `hub partners list`")
    transport = hub.transport
    if not isinstance(transport, AmqpTransport):
        fail("HUB_BROKER_URL is not an amqp:// URL; partner queues need RabbitMQ", 2)
    user = user or f"hub-partner-{partner_id}"
    generated = password is None
    password = password or secrets.token_urlsafe(24)
    try:
        result = provision_partner(transport, partner_id, user, password, management_url or hub.settings.amqp_management_url)
    except BrokerUnreachable as exc:
        fail(str(exc))
    queue, how = result["queue"], result["via"]
    profile = hub.partners[partner_id].delivery
    if generated:
        result["password"] = password
    text = [f"partner {partner_id}: RabbitMQ user {user!r} may read only queue {queue!r} on vhost {transport.vhost!r} (set up via {how})"]
    if generated:
        text.append(f"password (shown once): {password}")
    if profile != "amqp":
        text.append(f"note: its profile says delivery: {profile}; set delivery: amqp to have deliveries pushed to the queue")
    _print(result, as_json, "\n".join(text))

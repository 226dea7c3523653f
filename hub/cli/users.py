"""`hub users ...`: the console's accounts (roles in docs/console.md).

A password is asked for twice at the terminal without echo, or read from standard input with
`--password-stdin` (for scripts: never on the command line, where `ps` and the shell history see it).
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from hub.cli.base import _hub, _print, app, fail, operator

users_app = typer.Typer(help="Console accounts and their roles.", no_args_is_help=True)
app.add_typer(users_app, name="users")

PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input (one line).")]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


def _agencies(hub) -> set[str]:  # type: ignore[no-untyped-def]
    from hub.console.pages.users import steering_agencies

    return steering_agencies(hub)


@users_app.command("add")
def users_add(
    login: Annotated[str, typer.Argument(help="The sign-in name (lower case).")],
    role: Annotated[str, typer.Option("--role", help="operator, case_manager, auditor or admin.")],
    agency: Annotated[Optional[str], typer.Option("--agency", help="The steering agency (partner id) of a case manager.")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="The name shown in the console.")] = None,
    locale: Annotated[str, typer.Option("--locale", help="de or en.")] = "de",
    password_stdin: PasswordStdin = False,
) -> None:
    """Add a console account."""
    from hub.console import accounts
    from hub.store import db
    from hub.store.history import audit

    hub = _hub()
    try:
        with db.write(hub.engine) as conn:
            user = accounts.add(conn, login, role, _password(password_stdin), display_name=name, agency=agency, agencies=_agencies(hub), locale=locale)
            audit(conn, operator(), "console-user-added", login=user.login, role=user.role, agency=user.agency)
    except accounts.AccountError as exc:
        fail(str(exc))
    typer.echo(f"added {user.login} ({user.role}{', ' + user.agency if user.agency else ''})")


@users_app.command("passwd")
def users_passwd(login: Annotated[str, typer.Argument(help="The account.")], password_stdin: PasswordStdin = False) -> None:
    """Set a new password (also lifts a lockout and ends the account's sessions)."""
    from hub.console import accounts
    from hub.store import db
    from hub.store.history import audit

    hub = _hub()
    try:
        with db.write(hub.engine) as conn:
            accounts.set_password(conn, login, _password(password_stdin))
            audit(conn, operator(), "console-password-set", login=login)
    except accounts.AccountError as exc:
        fail(str(exc))
    typer.echo(f"new password set for {login}")


@users_app.command("disable")
def users_disable(login: Annotated[str, typer.Argument(help="The account.")]) -> None:
    """Disable an account: it can no longer sign in, and its sessions end now."""
    from hub.console import accounts
    from hub.store import db
    from hub.store.history import audit

    hub = _hub()
    try:
        with db.write(hub.engine) as conn:
            accounts.disable(conn, login)
            audit(conn, operator(), "console-user-disabled", login=login)
    except accounts.AccountError as exc:
        fail(str(exc))
    typer.echo(f"disabled {login}")


@users_app.command("list")
def users_list(as_json: Annotated[bool, typer.Option("--json", help="Output as JSON.")] = False) -> None:
    """The accounts with their roles and state."""
    from hub.console import accounts
    from hub.store import db

    hub = _hub()
    with db.read(hub.engine) as conn:
        found = accounts.listing(conn)
    text = "\n".join(f"{u['login']:<20} {u['role']:<13} {u['agency'] or '-':<24} {'disabled' if u['disabled'] else 'locked' if u['locked'] else 'active'}" for u in found)
    _print(found, as_json, text or "no accounts")

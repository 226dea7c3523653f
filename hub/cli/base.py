"""The `hub` command line's root: the typer apps, one-sentence errors, the hub a command works on.

Exit codes (surface.md): 0 success, 1 input refused, 2 usage error.

Errors are one clear sentence on stderr; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

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


def operator() -> str:
    """Who runs this command, as the audit log and the history name them: `cli:<login name>`."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"[:64]
    except Exception:  # noqa: BLE001 - no login name (a container without one): still the CLI
        return "cli"


def _hub(migrate: bool = True, log_to: Path | None = None):  # type: ignore[no-untyped-def]
    from hub import logs
    from hub.runtime import Hub

    settings = get_settings()
    logs.configure(settings.log_format, settings.log_level, to=log_to)
    hub = Hub(settings)
    if migrate and settings.auto_migrate:
        hub.migrate()
    return hub


def _checked(hub):  # type: ignore[no-untyped-def]
    """The hub, its case chain's contracts (lifecycle, rules, measures) and its alerts checked: a
    process that would act on a broken rule file does not start; the error names file and line."""
    from hub.alerts import rules_of
    from hub.yaml_lines import ContractError

    try:
        hub.chain
        rules_of(hub)
    except ContractError as exc:
        fail(f"{exc} (`hub contracts check` lists every problem)")
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

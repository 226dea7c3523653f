"""`hub contracts ...`: the contract catalogue offline: list, validate, check, document."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hub.config import get_settings
from hub.cli.base import _hub, _print, contracts_app, fail


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
    """Check every contract: examples validate and round-trip; versions keep their compatibility level; the alerts."""
    from hub.alerts import AlertRules
    from hub.endpoints.validate import check_contracts
    from hub.yaml_lines import ContractError

    hub = _hub(migrate=False)
    problems = check_contracts(hub)
    try:
        AlertRules.load(hub.contracts_dir)
    except ContractError as exc:
        problems.append(str(exc))
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

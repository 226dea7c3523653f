"""The documents tell the truth about the surface: every `hub ...` command that README.md and docs/*.md
name in code exists in the CLI, every `HUB_...` variable they name is a setting or is read by the code,
every `METHOD /path` they name is a route of the HTTP app, and the README stays a short product page.

A reader types what the documents show; a command that was renamed, a variable nobody reads or a route
that moved is a broken promise. The failures name the document, the line and what is missing.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer.main
from fastapi.testclient import TestClient

from hub import cli
from hub.api.app import create_app
from hub.runtime import Hub
from tests.conftest import ROOT

README = ROOT / "README.md"
README_MAX_LINES = 150
SHELL_BLOCKS = {"", "sh", "bash", "shell", "console"}

FENCE = re.compile(r"^\s*```(\S*)\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
#: `hub` where a shell would run it: at the start, after a separator or blank, or as .../bin/hub
HUB_CALL = re.compile(r"(?:^|(?<=[\s;&|(`])|(?<=bin/))hub((?:[ \t]+[^\s;&|()`'\"<>]+)*)")
VARIABLE = re.compile(r"\bHUB_[A-Z][A-Z0-9_]*[A-Z0-9]\b")
ROUTE = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE)\s+(/[\w{}/|.-]*)")


def documents() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def where(doc: Path, line: int) -> str:
    return f"{doc.relative_to(ROOT)}:{line}"


def code_pieces(doc: Path) -> Iterator[tuple[int, str, bool]]:
    """(line number, code, is shell) for every line of a fenced block and every inline code span."""
    info: str | None = None
    for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1):
        fence = FENCE.match(line)
        if fence:
            info = fence.group(1).lower() if info is None else None
            continue
        if info is not None:
            yield number, line, info in SHELL_BLOCKS
        else:
            for span in CODE_SPAN.finditer(line):
                yield number, span.group(2), True


def without_comment(code: str) -> str:
    """A shell comment (`# ...` at the start or after a blank) is prose, not a command."""
    return re.split(r"(?:^|\s)#", code, maxsplit=1)[0]


def hub_commands() -> Iterator[tuple[str, int, list[str]]]:
    """(place, line, words after `hub`) for every hub invocation shown in shell code."""
    for doc in documents():
        for number, code, shell in code_pieces(doc):
            if not shell:
                continue
            for call in HUB_CALL.finditer(without_comment(code)):
                yield where(doc, number), number, call.group(1).split()


def missing_command(words: list[str]) -> str | None:
    """The first word that names no command of the typer app, or None when the path resolves.

    A group must be followed by one of its subcommands (or end, or an option); `a|b|c` names
    several alternatives, each of which must exist."""
    group: Any = typer.main.get_command(cli.app)
    path = ["hub"]
    for word in words:
        if word.startswith("-") and hasattr(group, "commands"):
            continue  # a group's own flag (`hub --debug serve`): the command follows it
        if not hasattr(group, "commands") or not re.fullmatch(r"[a-z][a-z0-9-]*(\|[a-z][a-z0-9-]*)*", word):
            return None
        names = word.split("|")
        unknown = [name for name in names if name not in group.commands]
        if unknown:
            return f"`{' '.join([*path, unknown[0]])}` (`{' '.join(path)}` has: {', '.join(sorted(group.commands))})"
        if len(names) > 1:
            return None  # alternatives end the path: each is a command of this group
        group = group.commands[word]
        path.append(word)
    return None


def settings_variables() -> set[str]:
    """HUB_* names of every pydantic settings class under hub/: env_prefix + field name, upper case.

    Read from the source, so the check follows settings wherever the modules move."""
    names: set[str] = set()
    for source in (ROOT / "hub").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(getattr(base, "id", getattr(base, "attr", None)) == "BaseSettings" for base in node.bases):
                prefix = next(
                    (kw.value.value for sub in ast.walk(node) if isinstance(sub, ast.keyword) and sub.arg == "env_prefix" and isinstance((kw := sub).value, ast.Constant)),
                    "",
                )
                fields = [stmt.target.id for stmt in node.body if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id != "model_config"]
                names |= {(prefix + field).upper() for field in fields}
    return names


def variables_read_by_code() -> set[str]:
    """HUB_* names that code reads or sets by name (a string literal of exactly that name), anywhere in
    the repository's Python (hub/, tests/, bench/, tools/) and in the CI script."""
    names: set[str] = set()
    for source in ROOT.rglob("*.py"):
        if ".venv" in source.parts or "site-packages" in source.parts:
            continue
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"HUB_[A-Z0-9_]+", node.value):
                names.add(node.value)
    ci = ROOT / ".ci" / "run"
    if ci.exists():
        names |= set(re.findall(r"^\s*(?:export\s+)?(HUB_[A-Z0-9_]+)=", ci.read_text(encoding="utf-8"), re.MULTILINE))
    return names


def test_every_hub_command_the_documents_show_exists() -> None:
    shown = list(hub_commands())
    assert shown, "no `hub ...` command found in the documents: the scan itself is broken"
    missing = [f"{place}: {problem}" for place, _, words in shown if (problem := missing_command(words))]
    assert not missing, "the documents name commands the CLI does not have:\n" + "\n".join(missing)


def test_every_hub_variable_the_documents_name_is_read_by_the_hub_or_its_tests() -> None:
    known = settings_variables() | variables_read_by_code()
    assert "HUB_DATABASE_URL" in known and "HUB_TEST_PG_URL" in known, f"the variable scan found too little: {sorted(known)}"
    missing = [
        f"{where(doc, number)}: {name} is neither a setting of the hub nor read anywhere in the code"
        for doc in documents()
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1)
        for name in VARIABLE.findall(line)
        if name not in known
    ]
    assert not missing, "the documents name environment variables nothing reads:\n" + "\n".join(missing)


def is_served(client: TestClient, method: str, path: str) -> bool:
    """Ask the app itself, without a token: a route it serves answers 401 (or its own answer), one it
    does not serve answers 404, a path served for other methods 405. Nothing is stored without a token."""
    concrete = re.sub(r"\{[^}]*\}", "x", path)
    return client.request(method, concrete).status_code not in (404, 405)


def documented_routes() -> Iterator[tuple[str, str, str]]:
    """(place, method, path) for every `METHOD /path` in the documents; `/a|b` at the end names
    alternatives; a query (`?limit=N`, `[?format=...]`) is not part of the path."""
    for doc in documents():
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1):
            for method, raw in ROUTE.findall(line):
                head, _, last = raw.rstrip("-.").rpartition("/")
                for alternative in last.split("|"):
                    yield where(doc, number), method, f"{head}/{alternative}"


def test_every_route_the_documents_name_is_served(hub: Hub) -> None:
    named = list(documented_routes())
    assert named, "no `METHOD /path` found in the documents: the scan itself is broken"
    client = TestClient(create_app(hub, role="none"), raise_server_exceptions=False)
    missing = [f"{place}: {method} {path}" for place, method, path in named if not is_served(client, method, path)]
    assert not missing, "the documents name routes the app does not serve:\n" + "\n".join(missing)


def test_the_readme_is_a_short_product_page() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; at most {README_MAX_LINES}: details belong in docs/"

"""The operator's CLI: every option says what it does, `partners add --format` offers the formats the
hub has adapters for, and partner tokens expire, can be listed (never their secret) and revoked one
by one, with the API refusing a revoked or expired token."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hub.store import db
from hub.adapters import format_names
from hub.api.app import create_app
from hub.cli import app
from hub.partners import token_hash
from hub.runtime import Hub
from hub.store.tables import partner_tokens
from tests.conftest import CONTRACTS, JOBCENTER, PROVIDER

runner = CliRunner()


def commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """Every command under `group` (typer vendors click: its classes are duck-typed here)."""
    yield " ".join(("hub", *path)), group
    if hasattr(group, "commands"):
        for name, command in group.commands.items():
            yield from commands(command, (*path, name))


def test_every_option_and_argument_of_every_command_has_help_text() -> None:
    missing = [
        f"{name} {param.opts[0] if param.param_type_name == 'option' else param.name.upper()}"
        for name, command in commands(typer.main.get_command(app))
        for param in command.params
        if not getattr(param, "hidden", False) and not (getattr(param, "help", None) or "").strip()
    ]
    assert not missing, "without help text: " + ", ".join(missing)


def test_every_json_option_says_what_it_outputs() -> None:
    """`--json` appears on many commands; each says in its help that it outputs JSON."""
    found = {
        name: param.help or ""
        for name, command in commands(typer.main.get_command(app))
        for param in command.params
        if "--json" in param.opts
    }
    assert len(found) >= 5 and "hub partners tokens" in found
    vague = {name: text for name, text in found.items() if "JSON" not in text}
    assert not vague, f"--json options whose help does not say JSON: {vague}"
    r = runner.invoke(app, ["partners", "list", "--help"])
    assert r.exit_code == 0 and "Output as JSON" in r.output, r.output


def test_partners_add_offers_the_formats_of_the_adapter_registry(tmp_path: Path, cli_env: dict[str, str]) -> None:
    (option,) = [p for p in typer.main.get_command(app).commands["partners"].commands["add"].params if p.name == "format"]
    formats = format_names(CONTRACTS)
    assert "municipal-csv" in formats
    for fmt in formats:
        assert fmt in (option.help or ""), f"--format help does not name {fmt}: {option.help!r}"
    r = runner.invoke(app, ["partners", "add", "neu-partner", "--name", "Neu", "--role", "provider", "--format", "fax"])
    assert r.exit_code == 2, r.output
    assert "--format" in r.output and "municipal-csv" in r.output, r.output
    assert not (Path(cli_env["HUB_CONTRACTS_DIR"]) / "partners" / "neu-partner.yaml").exists()


# -- tokens --------------------------------------------------------------------------------------------
@pytest.fixture
def cli_env(hub: Hub, hub_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """The CLI, run in this process, against the test's hub (a copy of the contracts: `add` writes)."""
    import shutil

    contracts = tmp_path / "contracts"
    shutil.copytree(hub_env["HUB_CONTRACTS_DIR"], contracts)
    env = {**hub_env, "HUB_CONTRACTS_DIR": str(contracts)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def hub_cli(*args: str) -> str:
    r = runner.invoke(app, list(args))
    assert r.exit_code == 0, f"hub {' '.join(args)} exited {r.exit_code}: {r.output}"
    return r.stdout


def listed(partner: str) -> list[dict]:
    return json.loads(hub_cli("partners", "tokens", partner, "--json"))


def api(hub: Hub) -> TestClient:
    return TestClient(create_app(hub, role="api"), raise_server_exceptions=False)


def test_a_new_token_expires_after_the_days_asked_for_and_a_year_by_default(hub: Hub, cli_env: dict[str, str]) -> None:
    short = hub_cli("partners", "token", PROVIDER, "--expires-in", "30").strip()
    default = hub_cli("partners", "token", PROVIDER).strip()
    assert short.startswith("cch_") and "\n" not in short, "stdout is the token alone (scripts capture it)"
    rows = {r["id"]: r for r in listed(PROVIDER)}
    now = dt.datetime.now(dt.timezone.utc)
    for token, days in ((short, 30), (default, 365)):
        row = rows[token_hash(token)[:12]]
        expires = dt.datetime.fromisoformat(row["expires"])
        assert abs((expires - now) - dt.timedelta(days=days)) < dt.timedelta(minutes=5), f"expected {days} days: {row}"
    r = runner.invoke(app, ["partners", "token", PROVIDER, "--expires-in", "0"])
    assert r.exit_code == 2, r.output


def test_tokens_lists_a_partners_tokens_without_their_secrets(hub: Hub, cli_env: dict[str, str]) -> None:
    token = hub_cli("partners", "token", PROVIDER, "--expires-in", "7").strip()
    hub_cli("partners", "token", JOBCENTER)
    rows = listed(PROVIDER)
    assert [r["id"] for r in rows] == [token_hash(token)[:12]], "only the partner's own tokens, by a short prefix of the stored hash"
    (row,) = rows
    assert set(row) >= {"id", "created", "expires", "revoked", "status"} and row["status"] == "valid" and row["revoked"] is None
    text = hub_cli("partners", "tokens", PROVIDER)
    for out in (text, json.dumps(rows)):
        assert token not in out and token_hash(token) not in out, "a listing shows neither the token nor its full hash"
    assert token_hash(token)[:12] in text and "valid" in text


def test_a_revoked_token_is_refused_401_within_the_token_cache_time(hub: Hub, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    hub.settings.token_cache_seconds = 0.5
    monkeypatch.setenv("HUB_TOKEN_CACHE_SECONDS", "0.5")
    keep = hub_cli("partners", "token", PROVIDER).strip()
    drop = hub_cli("partners", "token", PROVIDER).strip()
    with api(hub) as client:
        for token in (keep, drop):
            assert client.get("/v1/inbox", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        out = hub_cli("partners", "tokens", PROVIDER, "--revoke", token_hash(drop)[:12])
        assert "revoked" in out and "0.5 s" in out, f"the command says when running hubs refuse it: {out!r}"
        deadline = time.monotonic() + 0.5 + 1.0
        while (r := client.get("/v1/inbox", headers={"Authorization": f"Bearer {drop}"})).status_code != 401:
            assert time.monotonic() < deadline, f"the revoked token still answered {r.status_code} after the cache time"
            time.sleep(0.05)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert client.get("/v1/inbox", headers={"Authorization": f"Bearer {keep}"}).status_code == 200, "the other token stays valid"
    statuses = {r["id"]: r["status"] for r in listed(PROVIDER)}
    assert statuses == {token_hash(keep)[:12]: "valid", token_hash(drop)[:12]: "revoked"}


def test_revoking_an_unknown_or_another_partners_token_is_refused_and_changes_nothing(hub: Hub, cli_env: dict[str, str]) -> None:
    other = hub_cli("partners", "token", JOBCENTER).strip()
    for token_id in ("000000000000", token_hash(other)[:12]):
        r = runner.invoke(app, ["partners", "tokens", PROVIDER, "--revoke", token_id])
        assert r.exit_code == 1 and f"no token {token_id}" in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert [row["status"] for row in listed(JOBCENTER)] == ["valid"]


def test_an_expired_token_is_refused_401_problem_json(hub: Hub, cli_env: dict[str, str]) -> None:
    token = hub_cli("partners", "token", PROVIDER).strip()
    with db.write(hub.engine) as conn:
        conn.execute(
            partner_tokens.update().where(partner_tokens.c.token_hash == token_hash(token)).values(expires_at=db.utcnow() - dt.timedelta(seconds=1))
        )
    headers = {"Authorization": f"Bearer {token}"}
    with api(hub) as client:
        r = client.get("/v1/inbox", headers=headers)
        assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json"), r.text
        assert "expired" in r.json()["detail"] and r.headers["www-authenticate"].startswith("Bearer"), r.json()
        post = client.post("/v1/messages", content=b"{}", headers={**headers, "Content-Type": "application/json"})
        assert post.status_code == 401 and "expired" in post.json()["detail"], post.text
    assert [row["status"] for row in listed(PROVIDER)] == ["expired"]


def test_a_token_that_expires_while_remembered_is_refused_from_its_expiry_on(hub: Hub) -> None:
    """The token cache keeps a token's expiry with it: remembering a token never extends it."""
    from hub.partners import issue_token

    hub.settings.token_cache_seconds = 600
    with db.write(hub.engine) as conn:
        token = issue_token(conn, PROVIDER, dt.timedelta(seconds=1))
        expires = conn.execute(sa.select(partner_tokens.c.expires_at)).scalar_one()
    expires = db.aware(expires)
    headers = {"Authorization": f"Bearer {token}"}
    with api(hub) as client:
        assert client.get("/v1/inbox", headers=headers).status_code == 200, "valid before its expiry (and now remembered)"
        while db.utcnow() <= expires:
            time.sleep(0.05)
        r = client.get("/v1/inbox", headers=headers)
        assert r.status_code == 401 and "expired" in r.json()["detail"], f"a remembered token outlived its expiry: {r.status_code}"


def test_tokens_issued_before_expiry_existed_stay_valid_and_are_listed_as_never_expiring(hub: Hub, cli_env: dict[str, str]) -> None:
    from hub.partners import issue_token

    with db.write(hub.engine) as conn:
        token = issue_token(conn, PROVIDER)  # as the demo and older hubs issue them
        assert conn.execute(sa.select(partner_tokens.c.expires_at)).scalar_one() is None
    (row,) = listed(PROVIDER)
    assert row["expires"] is None and row["status"] == "valid"
    assert "never" in hub_cli("partners", "tokens", PROVIDER)
    with api(hub) as client:
        assert client.get("/v1/inbox", headers={"Authorization": f"Bearer {token}"}).status_code == 200

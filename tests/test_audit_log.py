"""The audit log is tamper-evident (§ 67d, § 80 SGB X): every entry names actor, action, time, purpose
and legal basis, is hash-chained onto one of the shard chains, and `hub audit verify` names the first
entry that was changed, removed or rewritten. Content reads are audited, a rolled-back transaction
leaves no gap, competing writers on PostgreSQL never fork a chain, and an export carries what an
auditor needs to verify it offline. On SQLite and on PostgreSQL."""

from __future__ import annotations

import csv
import hashlib
import json
import random
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hub.api.app import create_app
from hub.cli import app
from hub.runtime import Hub
from hub.store import audit_chain, db, migrate, unit_of_work
from hub.store.history import audit
from hub.store.tables import audit_heads, audit_log, deliveries, messages
from tests.conftest import JOBCENTER, OPERATOR, PROVIDER, hub_for, provider_sample, send
from tests.test_duplicate_reports import assign

runner = CliRunner()


# hub_env: the embedded queue on SQLite, then on PostgreSQL (tests/conftest.py BOTH_DATABASES)


@pytest.fixture
def cli_env(hub: Hub, hub_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """`hub ...` run in this process works on the test's database."""
    for key, value in hub_env.items():
        monkeypatch.setenv(key, value)
    return hub_env


def hub_cli(*args: str) -> Any:
    return runner.invoke(app, list(args))


def verify() -> Any:
    return hub_cli("audit", "verify")


def traffic(hub: Hub, tokens: dict[str, str]) -> dict[str, str]:
    """An assignment to the provider, its attendance report to the Jobcenter, both picked up and
    acknowledged over the API, the report's status read by its sender and an operator; then five
    entries in one transaction (on PostgreSQL the others may each be on a shard of their own)."""
    case_id = assign(hub, "123D456789")
    report = send(hub, PROVIDER, "provider-json", provider_sample("teilnahme.anwesenheit.2030", case_id))
    api = TestClient(create_app(hub, role="api"))
    for partner in (PROVIDER, JOBCENTER):
        headers = {"Authorization": f"Bearer {tokens[partner]}"}
        waiting = api.get("/v1/inbox", headers=headers).json()["deliveries"]
        assert waiting, f"{partner} has nothing in its inbox"
        for delivery in waiting:
            assert api.post(f"/v1/inbox/{delivery['id']}/ack", headers=headers).status_code == 200
    for partner in (PROVIDER, OPERATOR):
        assert api.get(f"/v1/messages/{report}", headers={"Authorization": f"Bearer {tokens[partner]}"}).status_code == 200
    with db.write(hub.engine) as conn, unit_of_work.collecting(conn):  # one batch: a chain of five at least, on any backend
        for _ in range(5):
            audit(conn, "hub", "replayed", message_id=report)
    return {"report": report}


def entries(hub: Hub, *where: Any) -> list[Any]:
    with db.read(hub.engine) as conn:
        return conn.execute(sa.select(audit_log).where(*where).order_by(audit_log.c.id)).all()


def longest_chain(hub: Hub) -> list[Any]:
    """The entries of the shard with the most of them, by seq (on SQLite all are on shard 0)."""
    by_shard: dict[int, list[Any]] = {}
    for row in entries(hub):
        by_shard.setdefault(row.shard, []).append(row)
    return sorted(max(by_shard.values(), key=len), key=lambda r: r.seq)


def tamper(hub: Hub, statement: str, **params: Any) -> None:
    """Change the database behind the hub's back, as someone with SQL access could."""
    with db.write(hub.engine) as conn:
        conn.execute(sa.text(statement), params)


def broken(result: Any) -> str:
    assert result.exit_code == 1, f"hub audit verify must refuse a broken chain (exit 1), got {result.exit_code}: {result.output}"
    return result.stderr.strip()


# -- the chain holds after real traffic -------------------------------------------------------------
def test_traffic_leaves_a_chain_that_verifies_and_every_entry_says_who_what_when_why(hub: Hub, tokens: dict[str, str], cli_env: dict) -> None:
    traffic(hub, tokens)
    rows = entries(hub)
    actions = {r.action for r in rows}
    assert {"received", "transmitted", "inbox-read", "acknowledged", "message-read"} <= actions, actions
    incomplete = [(r.id, r.action) for r in rows if not (r.actor and r.action and r.at and r.purpose and r.legal_basis)]
    assert not incomplete, f"entries without actor, action, time, purpose or legal basis: {incomplete}"
    reads = [r for r in rows if r.action == "inbox-read"]
    assert {r.purpose for r in reads} >= {"massnahmedurchfuehrung", "teilnahmenachweis"}, "an inbox read names the purpose of what it handed out"
    assert all("SGB" in r.legal_basis for r in reads)
    viewers = {r.actor for r in rows if r.action == "message-read"}
    assert viewers == {PROVIDER, OPERATOR}, f"each status read is audited with its reader: {viewers}"

    result = verify()
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().startswith(f"audit log verified: {len(rows)} entries"), result.stdout
    assert len(result.stdout.strip().splitlines()) == 1


def test_hub_messages_show_is_an_audited_read(hub: Hub, tokens: dict[str, str], cli_env: dict) -> None:
    report = traffic(hub, tokens)["report"]
    before = len(entries(hub, audit_log.c.action == "message-read"))
    result = hub_cli("messages", "show", report)
    assert result.exit_code == 0, result.output
    read = entries(hub, audit_log.c.action == "message-read")
    assert len(read) == before + 1 and read[-1].message_id == report and read[-1].actor.startswith("cli")


# -- tampering is found, and named ----------------------------------------------------------------------
def test_a_changed_field_is_named_by_entry_and_shard(hub: Hub, tokens: dict[str, str], cli_env: dict) -> None:
    traffic(hub, tokens)
    victim = entries(hub, audit_log.c.action == "transmitted")[0]
    tamper(hub, "UPDATE audit_log SET partner = 'traeger-lernwerkstatt' WHERE id = :id", id=victim.id)
    message = broken(verify())
    assert f"entry {victim.id} (shard {victim.shard}, seq {victim.seq})" in message and "does not match its hash" in message, message
    assert len(message.splitlines()) == 1, message


def test_a_changed_detail_is_found_too(hub: Hub, tokens: dict[str, str], cli_env: dict) -> None:
    traffic(hub, tokens)
    victim = entries(hub, audit_log.c.action == "inbox-read")[0]
    tamper(hub, "UPDATE audit_log SET detail = :detail WHERE id = :id", id=victim.id, detail=json.dumps({"deliveries": []}))
    assert f"entry {victim.id} " in broken(verify())


def test_an_entry_rewritten_with_a_fresh_hash_is_named_by_the_next_one(hub: Hub, tokens: dict[str, str], cli_env: dict) -> None:
    """Someone who knows the recipe recomputes the changed entry's hash: the next entry chained to the old one."""
    traffic(hub, tokens)
    victim, following = longest_chain(hub)[1:3]
    forged = {**victim._mapping, "actor": "someone-else"}
    tamper(hub, "UPDATE audit_log SET actor = 'someone-else', hash = :h WHERE id = :id", id=victim.id, h=audit_chain.entry_hash(forged))
    message = broken(verify())
    assert f"entry {victim.id} (shard {victim.shard}, seq {victim.seq})" in message and f"next entry ({following.id})" in message, message


def test_a_deleted_entry_is_found_and_named_by_its_place(hub: Hub, tokens: dict[str, str], cli_env: dict) -> None:
    traffic(hub, tokens)
    chain = longest_chain(hub)
    tamper(hub, "DELETE FROM audit_log WHERE id = :id", id=chain[2].id)
    message = broken(verify())
    assert f"entry {chain[3].id} (shard {chain[3].shard}, seq {chain[3].seq})" in message and f"seq {chain[2].seq}" in message and "deleted" in message, message


def test_deleting_the_newest_entries_is_found_through_the_head(hub: Hub, tokens: dict[str, str], cli_env: dict) -> None:
    traffic(hub, tokens)
    chain = longest_chain(hub)
    tamper(hub, "DELETE FROM audit_log WHERE shard = :shard AND seq >= :seq", shard=chain[-2].shard, seq=chain[-2].seq)
    message = broken(verify())
    assert f"entry {chain[-3].id} (shard {chain[-3].shard}, seq {chain[-3].seq})" in message and f"head says seq {chain[-1].seq}" in message, message


def test_a_consistent_rewrite_of_chain_and_head_is_found_by_an_anchor_kept_elsewhere(hub: Hub, tokens: dict[str, str], cli_env: dict, tmp_path: Path) -> None:
    """Rewriting every hash from the change on, head row included, passes the chain itself; the anchor
    printed before (and kept in a file) and the stored anchor both still name the old hash."""
    traffic(hub, tokens)
    anchored = hub_cli("audit", "anchor")
    assert anchored.exit_code == 0, anchored.output
    kept = tmp_path / "anchors.jsonl"
    kept.write_text(anchored.stdout, encoding="utf-8")
    chain = longest_chain(hub)
    prev = chain[0].prev_hash
    with db.write(hub.engine) as conn:
        for row in chain:
            entry = {**row._mapping, "prev_hash": prev, **({"actor": "someone-else"} if row.id == chain[0].id else {})}
            prev = audit_chain.entry_hash(entry)
            conn.execute(audit_log.update().where(audit_log.c.id == row.id).values(actor=entry["actor"], prev_hash=entry["prev_hash"], hash=prev))
        conn.execute(audit_heads.update().where(audit_heads.c.shard == chain[0].shard).values(hash=prev))
        conn.exec_driver_sql("DELETE FROM audit_anchors")
    outside = broken(hub_cli("audit", "verify", "--anchors", str(kept)))
    assert f"entry {chain[-1].id} (shard {chain[-1].shard}, seq {chain[-1].seq})" in outside and "anchors.jsonl line 1" in outside, outside
    assert verify().exit_code == 0, "without the kept anchor (the stored ones deleted too) the rewrite is consistent"


# -- no gaps, no forks ------------------------------------------------------------------------------------
def test_a_rolled_back_transaction_leaves_no_gap_and_chains_nothing_twice(hub: Hub, cli_env: dict) -> None:
    class Undo(Exception):
        pass

    for collected in (False, True):
        with pytest.raises(Undo):
            with db.write(hub.engine) as conn:
                if collected:  # rows collected in a unit of work: sealed at the flush, which a failure never reaches
                    with unit_of_work.collecting(conn):
                        audit(conn, "test", "replayed", message_id="rolled-back-collected")
                        raise Undo
                audit(conn, "test", "replayed", message_id="rolled-back-at-once")  # sealed and written at once
                raise Undo
    with db.write(hub.engine) as conn:  # a savepoint around an entry written at once, rolled back
        audit(conn, "test", "replayed", message_id="kept-1")
        with pytest.raises(Undo), unit_of_work.savepoint(conn):
            audit(conn, "test", "replayed", message_id="rolled-back-savepoint")
            raise Undo
        audit(conn, "test", "replayed", message_id="kept-2")
    with db.write(hub.engine) as conn, unit_of_work.collecting(conn):
        audit(conn, "test", "replayed", message_id="kept-3")
    rows = entries(hub, audit_log.c.actor == "test")
    assert [r.message_id for r in rows] == ["kept-1", "kept-2", "kept-3"]
    assert verify().exit_code == 0, verify().output


@pytest.mark.postgres
def test_competing_writers_on_postgres_never_fork_a_chain(tmp_path: Path) -> None:
    """Eight threads, each its own connection, append in transactions of one to twenty entries (some
    collected in a unit of work, some at once, every fifth rolled back): every committed entry is
    chained exactly once, the chains verify, and the writers spread over several shards."""
    from tests.integration.services import postgres_database

    with postgres_database() as url:
        migrate.upgrade(url)
        engine = db.get_engine(url)
        committed: list[str] = []
        lock, errors = threading.Lock(), []

        def writer(n: int) -> None:
            rnd = random.Random(n)
            try:
                for t in range(40):
                    ids = [f"w{n}-t{t}-e{k}" for k in range(rnd.randint(1, 20))]
                    undo = t % 5 == 4
                    try:
                        with db.write(engine) as conn:
                            if t % 2:
                                with unit_of_work.collecting(conn):
                                    for i in ids:
                                        audit(conn, f"writer-{n}", "replayed", message_id=i)
                            else:
                                for i in ids:
                                    audit(conn, f"writer-{n}", "replayed", message_id=i)
                            if undo:
                                raise LookupError
                    except LookupError:
                        continue
                    with lock:
                        committed.extend(ids)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        with db.read(engine) as conn:
            rows = conn.execute(sa.select(audit_log.c.message_id, audit_log.c.shard, audit_log.c.seq)).all()
            from hub.store import audit_trail

            verdict = audit_trail.verify(conn)
        assert sorted(r.message_id for r in rows) == sorted(committed), "every committed entry once, no rolled-back one"
        assert verdict.broken is None, verdict.broken.sentence()
        assert verdict.entries == len(committed)
        assert len({r.shard for r in rows}) >= 2, "competing writers should spread over the shards"


# -- export ------------------------------------------------------------------------------------------------
def offline_hash(entry: dict[str, Any]) -> str:
    """The recipe of docs/audit.md, written out independently of the hub's code."""
    content = {k: v for k, v in entry.items() if k not in ("record", "id", "hash")}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")).hexdigest()


def test_an_export_lets_an_auditor_verify_offline_in_jsonl_and_csv(hub: Hub, tokens: dict[str, str], cli_env: dict, tmp_path: Path) -> None:
    traffic(hub, tokens)
    assert hub_cli("audit", "anchor").exit_code == 0
    total = len(entries(hub))
    out = tmp_path / "audit.jsonl"
    result = hub_cli("audit", "export", "--from", "2000-01-01", "--to", "2999-12-31", "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    exported = [e for e in lines if e["record"] == "entry"]
    anchors = [e for e in lines if e["record"] == "anchor"]
    assert len(exported) == total and anchors, "every entry of the period, and the anchors"
    by_shard: dict[int, list[dict]] = {}
    for e in exported:
        assert offline_hash(e) == e["hash"], f"entry {e['id']}: its hash is not the documented recipe's"
        by_shard.setdefault(e["shard"], []).append(e)
    for chain in by_shard.values():
        chain.sort(key=lambda e: e["seq"])
        assert all(b["prev_hash"] == a["hash"] for a, b in zip(chain, chain[1:])), "each entry links to the one before"
    hashes = {(e["shard"], e["seq"]): e["hash"] for e in exported}
    assert all(hashes[(a["shard"], a["seq"])] == a["hash"] for a in anchors)

    out_csv = tmp_path / "audit.csv"
    assert hub_cli("audit", "export", "--from", "2000-01-01", "--to", "2999-12-31", "--out", str(out_csv), "--format", "csv").exit_code == 0
    rows = list(csv.DictReader(out_csv.open(encoding="utf-8", newline="")))
    assert {"id", "shard", "seq", "prev_hash", "hash", "actor", "purpose", "legal_basis"} <= set(rows[0])
    csv_entries = [r for r in rows if r["record"] == "entry"]
    assert [r["hash"] for r in csv_entries][: len(exported)] == [e["hash"] for e in exported], "the same entries (and the first export's own)"
    assert entries(hub)[-1].action == "audit-exported", "the export itself is an audited access"


def test_an_export_of_a_day_without_entries_is_empty_and_bad_dates_are_usage_errors(hub: Hub, cli_env: dict, tmp_path: Path) -> None:
    out = tmp_path / "empty.jsonl"
    assert hub_cli("audit", "export", "--from", "2001-01-01", "--to", "2001-01-01", "--out", str(out)).exit_code == 0
    assert out.read_text(encoding="utf-8") == ""
    for args, said in (
        (["--from", "2026-02-30", "--to", "2026-03-01"], "is not a date"),
        (["--from", "2026-03-02", "--to", "2026-03-01"], "is not before"),
        (["--from", "2026-03-01", "--to", "2026-03-01", "--format", "xml"], "--format must be one of jsonl, csv"),
    ):
        result = hub_cli("audit", "export", *args, "--out", str(tmp_path / "bad.jsonl"))
        assert result.exit_code == 2 and said in result.stderr and len(result.stderr.strip().splitlines()) == 1, (args, result.output)
        assert not (tmp_path / "bad.jsonl").exists(), "bad input writes nothing"


# -- the log outlives what it is about ----------------------------------------------------------------
def test_the_audit_log_survives_the_deletion_of_message_bodies_and_messages(hub: Hub, tokens: dict[str, str], cli_env: dict) -> None:
    traffic(hub, tokens)
    total = len(entries(hub))
    with db.write(hub.engine) as conn:
        conn.execute(deliveries.delete())
        conn.execute(messages.delete())
    assert len(entries(hub)) == total
    assert verify().exit_code == 0


def test_entries_written_before_the_chain_existed_are_chained_by_the_migration(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(url, "0009")
    with db.get_engine(url).begin() as conn:
        for n in range(3):
            conn.execute(
                sa.text("INSERT INTO audit_log (at, actor, action, message_id, detail) VALUES (:at, 'hub', 'received', :m, :d)"),
                {"at": db.utcnow(), "m": f"old-{n}", "d": json.dumps({"n": n})},
            )
    migrate.upgrade(url)
    from hub.store import audit_trail

    with db.read(db.get_engine(url)) as conn:
        verdict = audit_trail.verify(conn)
        seqs = conn.execute(sa.select(audit_log.c.shard, audit_log.c.seq).order_by(audit_log.c.id)).all()
    assert verdict.broken is None and verdict.entries == 3, verdict
    assert [tuple(s) for s in seqs] == [(0, 1), (0, 2), (0, 3)]
    db.dispose_all()


def test_an_entry_without_purpose_or_legal_basis_is_refused(hub: Hub) -> None:
    with pytest.raises(ValueError, match="names no purpose and legal basis"), db.write(hub.engine) as conn:
        audit(conn, "test", "something-new")


def test_the_workers_record_anchors_periodically(hub_env: dict[str, str]) -> None:
    from hub.workers import Workers
    from tests.conftest import wait_until

    hub = hub_for(hub_env, audit_anchor_seconds=0.1)
    try:
        with db.write(hub.engine) as conn:
            audit(conn, "test", "replayed", message_id="anchored")
        workers = Workers(hub, role="pipeline")
        workers.start()
        try:
            wait_until(lambda: len(anchors_of(hub)) >= 2, 20, "two rounds of anchors from the worker")
        finally:
            workers.stop(5)
        assert all(a.seq == 1 for a in anchors_of(hub)), "each anchors the one entry's shard at its head"
    finally:
        hub.close()
        db.dispose_all()


def anchors_of(hub: Hub) -> list[Any]:
    from hub.store.tables import audit_anchors

    with db.read(hub.engine) as conn:
        return conn.execute(sa.select(audit_anchors)).all()


def test_a_detail_the_json_column_changes_is_hashed_as_it_is_read_back(hub: Hub, cli_env: dict) -> None:
    """Tuples come back as lists and integer keys as strings: the hash is taken over what is stored."""
    with db.write(hub.engine) as conn:
        audit(conn, "test", "replayed", message_id="odd", pair=("a", 1), by_number={2: "b", 10: "c"}, nested={"x": [{"y": (1, 2)}]})
    assert entries(hub, audit_log.c.message_id == "odd")[0].detail["by_number"] == {"2": "b", "10": "c"}
    assert verify().exit_code == 0, verify().output

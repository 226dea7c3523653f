"""What the audit log's hash chain costs per entry, on SQLite and PostgreSQL (not part of the test suite).

Appends N entries through `history.audit` -- one per transaction (an API read) and in transactions of
16 collected in a unit of work (a pipeline batch) -- and the same rows written without the chain (the
plain INSERT the hub did before, onto a throwaway shard so that the unique key holds), and prints
microseconds of wall time per entry for each. Also the CPU of sealing alone (canonical JSON + SHA-256).

    .venv/bin/python bench/audit_bench.py                 # SQLite and PostgreSQL (HUB_TEST_PG_URL)
    .venv/bin/python bench/audit_bench.py --n 5000 --backends sqlite

Creates its own SQLite file and PostgreSQL database and removes them afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.store import audit_chain, db, migrate, unit_of_work  # noqa: E402
from hub.store.history import audit  # noqa: E402
from hub.store.tables import audit_log  # noqa: E402

PG_URL = os.environ.get("HUB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DETAIL = {"fields": ["case_id", "measure_number", "participant.given_name", "participant.family_name", "period_start"]}


def entry(n: int) -> dict:
    return dict(
        message_id=f"01M8{n:022d}", delivery_id=f"01M9{n:022d}", partner="traeger-bildungswerk",
        purpose="massnahmedurchfuehrung", legal_basis="§ 17 Abs. 1, § 50 Abs. 1 SGB II i. V. m. § 69 Abs. 1 Nr. 1 SGB X",
    )


def chained(engine: sa.Engine, n: int, batch: int) -> float:
    start = time.perf_counter()
    for first in range(0, n, batch):
        with db.write(engine) as conn, unit_of_work.collecting(conn):
            for k in range(first, min(first + batch, n)):
                audit(conn, "hub", "transmitted", **entry(k), **DETAIL)
    return (time.perf_counter() - start) / n * 1e6


def unchained(engine: sa.Engine, n: int, batch: int, shard: int) -> float:
    """The same rows as one INSERT each (executemany per batch), without head, hash or seal."""
    insert = audit_log.insert()
    start = time.perf_counter()
    for first in range(0, n, batch):
        with db.write(engine) as conn:
            rows = [
                {"at": db.utcnow(), "actor": "hub", "action": "transmitted", **entry(k), "detail": DETAIL,
                 "shard": shard, "seq": k + 1, "prev_hash": audit_chain.GENESIS, "hash": audit_chain.GENESIS}
                for k in range(first, min(first + batch, n))
            ]
            conn.execute(insert, rows)
    return (time.perf_counter() - start) / n * 1e6


def sealing_cpu(n: int) -> float:
    rows = [{"at": db.utcnow(), "actor": "hub", "action": "transmitted", **entry(k), "detail": DETAIL, "shard": 0, "prev_hash": audit_chain.GENESIS} for k in range(n)]
    start = time.process_time()
    for seq, row in enumerate(rows, 1):
        row["detail"] = audit_chain.normalised(row["detail"])
        row["seq"] = seq
        row["hash"] = audit_chain.entry_hash(row)
    return (time.process_time() - start) / n * 1e6


def run(url: str, n: int) -> dict:
    migrate.upgrade(url)
    engine = db.get_engine(url)
    result = {}
    for name, batch in (("one per transaction", 1), ("16 per transaction", 16)):
        result[name] = {
            "chained_us": round(chained(engine, n, batch), 1),
            "unchained_us": round(unchained(engine, n, batch, 1000 + batch), 1),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="entries per measurement")
    parser.add_argument("--backends", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    args = parser.parse_args()
    out: dict = {"sealing_cpu_us": round(sealing_cpu(20_000), 1)}
    backends = args.backends.split(",")
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory() as tmp:
            out["sqlite"] = run(f"sqlite:///{tmp}/audit.db", args.n)
            db.dispose_all()
    if "postgres" in backends:
        name = "hub_audit_bench_" + uuid.uuid4().hex[:8]
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            out["postgres"] = run(sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False), args.n)
        finally:
            db.dispose_all()
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(json.dumps(out, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()

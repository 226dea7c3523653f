"""Benchmark of the database-backed master person index (not a test; run by hand).

Loads N synthetic German persons (hub.dedup.synthetic, realistic scale) into the hub's own tables
(persons, person_records, person_keys) on SQLite or PostgreSQL, then resolves queries one at a time
exactly as the pipeline does (PersonIndex.candidates: blocking keys -> indexed key table -> records
-> Fellegi-Sunter score): lookups per second, p50/p95 latency, hit rate for mistyped copies of
indexed persons and false-link rate for persons not in the index.

Targets (issue 5): >= 1,000 lookups/s with p95 <= 20 ms on PostgreSQL, >= 3,000/s on the embedded
default, false links <= 0.3 %, against N = 1,000,000.

    .venv/bin/python bench/mpi_bench.py --n 100000                      # SQLite in a temp dir
    .venv/bin/python bench/mpi_bench.py --n 100000 --url postgresql+psycopg://postgres@127.0.0.1:5432/test
      (PostgreSQL: the benchmark creates and drops its own database next to the one named)
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub import db, migrate  # noqa: E402
from hub.dedup.person_index import FIELDS, PersonIndex, person_record  # noqa: E402
from hub.dedup.synthetic import GermanPopulation, corrupt  # noqa: E402
from hub.ids import new_id  # noqa: E402
from hub.tables import person_keys, person_records, persons  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def data_of(record) -> dict:  # noqa: ANN001
    d = {f: (str(getattr(record, f)) if getattr(record, f) is not None else None) for f in FIELDS}
    return {k: v for k, v in d.items() if v}


def load(engine: sa.Engine, index: PersonIndex, people: list, batch: int = 20_000) -> None:
    now = db.utcnow()
    for start in range(0, len(people), batch):
        chunk = people[start : start + batch]
        prs, recs, keys = [], [], []
        for p in chunk:
            pid, rid = new_id(), new_id()
            data = data_of(p)
            prs.append({"id": pid, "created_at": now})
            recs.append({"id": rid, "person_id": pid, "origin_person_id": pid, "partner_id": "bench", "local_id": p.record_id, "data": data, "created_at": now, "updated_at": now})
            keys += [{"key": k[:96], "record_id": rid} for k in set(index.linker.blocking_keys(person_record(rid, data)))]
        with db.write(engine) as conn:
            conn.execute(persons.insert(), prs)
            conn.execute(person_records.insert(), recs)
            conn.execute(person_keys.insert(), keys)
        print(f"  loaded {start + len(chunk):,}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--url", default=None, help="PostgreSQL URL to create the benchmark database next to; default SQLite")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    drop = None
    if args.url:
        name = f"hub_mpi_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(args.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.exec_driver_sql(f"CREATE DATABASE {name}")
        url = str(sa.engine.make_url(args.url).set(database=name).render_as_string(hide_password=False))
        drop = (admin, name)
    else:
        url = f"sqlite:///{tempfile.mkdtemp()}/mpi.db"
    try:
        migrate.upgrade(url)
        engine = db.get_engine(url)
        index = PersonIndex.load(ROOT / "contracts")
        pop = GermanPopulation(args.seed, realistic_scale=True)
        t0 = time.perf_counter()
        people = pop.persons(args.n)
        print(f"generated {args.n:,} persons in {time.perf_counter() - t0:.1f} s", flush=True)
        t0 = time.perf_counter()
        load(engine, index, people)
        print(f"loaded into {engine.dialect.name} in {time.perf_counter() - t0:.1f} s", flush=True)
        if engine.dialect.name == "postgresql":
            with engine.connect() as c:
                c.exec_driver_sql("ANALYZE")
                c.commit()

        r = random.Random(args.seed)
        known = [corrupt(p, r, f"q{i}", pop) for i, p in enumerate(r.sample(people, args.queries // 2))]
        unknown = pop.persons(args.queries - len(known))
        queries = [(q, True) for q in known] + [(q, False) for q in unknown]
        r.shuffle(queries)
        latencies, hits, false_links = [], 0, 0
        with db.read(engine) as conn:
            index.index_size(conn)
            t0 = time.perf_counter()
            for q, is_known in queries:
                s = time.perf_counter()
                top = index.candidates(conn, data_of(q), limit=1)
                latencies.append(time.perf_counter() - s)
                matched = bool(top) and top[0].decision == "match"
                hits += matched and is_known
                false_links += matched and not is_known
            wall = time.perf_counter() - t0
        latencies.sort()
        print(
            f"{engine.dialect.name}: N={args.n:,} lookups/s {len(queries) / wall:,.0f}, "
            f"p50 {latencies[len(latencies) // 2] * 1000:.2f} ms, p95 {latencies[int(len(latencies) * 0.95)] * 1000:.2f} ms, "
            f"known found {hits / len(known):.1%}, false links {false_links / len(unknown):.2%}"
        )
    finally:
        db.dispose_all()
        if drop:
            with drop[0].connect() as c:
                c.exec_driver_sql(f"DROP DATABASE IF EXISTS {drop[1]} WITH (FORCE)")


if __name__ == "__main__":
    main()

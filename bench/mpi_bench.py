"""Benchmark of the database-backed master person index (not a test; run by hand).

Loads N synthetic German persons (hub.dedup.synthetic, realistic scale) into the hub's own tables
(persons, person_records with the normalised form, person_keys) on SQLite or PostgreSQL, exactly as
PersonIndex.resolve files them, then looks up queries as the pipeline does
(PersonIndex.candidates: blocking keys -> indexed key table -> stored forms -> Fellegi-Sunter
score): lookups per second, p50/p95 latency, hit rate for mistyped copies of indexed persons,
false-link rate for persons not in the index, and the client's CPU time per lookup.

``--workers K`` runs K processes that look up their share of the queries at the same time, each
with its own connection (as K hub worker processes would); the rate is all queries over the wall
time from the common start to the last finish; each process first does ``--warmup`` lookups of
other persons that are not measured (statement caches, the first touch of the mapped database
pages: a hub worker process runs for hours). ``--batch B`` uses candidates_many for B queries
per call (latency is then that of a whole batch).

Targets (issue 5): >= 1,000 lookups/s with p95 <= 20 ms on PostgreSQL, >= 3,000/s on the embedded
default, on 2 cores, false links <= 0.3 %, against N = 1,000,000.

    .venv/bin/python bench/mpi_bench.py --n 100000                      # SQLite in a temp dir
    .venv/bin/python bench/mpi_bench.py --n 100000 --url postgresql+psycopg://postgres@127.0.0.1:5432/test
      (PostgreSQL: the benchmark creates and drops its own database next to the one named)
    .venv/bin/python bench/mpi_bench.py --keep /tmp/mpi1m.db --workers 2   # keep the loaded index, reuse it
    .venv/bin/python bench/mpi_bench.py --url ... --keep hub_mpi_1m --workers 2
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.store import db  # noqa: E402
from hub.store import migrate  # noqa: E402
from hub.dedup.person_index import FIELDS, PersonIndex  # noqa: E402
from hub.dedup.synthetic import GermanPopulation, corrupt  # noqa: E402
from hub.ids import new_id  # noqa: E402
from hub.store.tables import person_keys, person_records, persons  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def data_of(record) -> dict:  # noqa: ANN001
    d = {f: (str(getattr(record, f)) if getattr(record, f) is not None else None) for f in FIELDS}
    return {k: v for k, v in d.items() if v}


def load(engine: sa.Engine, index: PersonIndex, people: list, batch: int = 20_000) -> None:
    """Rows as PersonIndex.resolve writes them (keys and normalised form from file_form)."""
    now = db.utcnow()
    for start in range(0, len(people), batch):
        chunk = people[start : start + batch]
        prs, recs, keys = [], [], []
        for p in chunk:
            pid, rid = new_id(), new_id()
            data = data_of(p)
            filed = index.file_form(data)
            prs.append({"id": pid, "created_at": now})
            recs.append({"id": rid, "person_id": pid, "origin_person_id": pid, "partner_id": "bench", "local_id": p.record_id, "data": data, "norm": filed.norm, "created_at": now, "updated_at": now})
            keys += [{"key": k, "record_id": rid} for k in filed.keys]
        with db.write(engine) as conn:
            conn.execute(persons.insert(), prs)
            conn.execute(person_records.insert(), recs)
            conn.execute(person_keys.insert(), keys)
        if (start + len(chunk)) % 100_000 < batch:
            print(f"  loaded {start + len(chunk):,}", flush=True)


def lookups(url: str, queries: list, warmup: list, batch: int, barrier, results) -> None:  # noqa: ANN001
    """One worker process: its share of the queries, one at a time (or in batches), timed."""
    engine = db.get_engine(url)
    index = PersonIndex.load(ROOT / "contracts")
    latencies, hits, false_links = [], 0, 0
    with db.read(engine) as conn:
        index.index_size(conn)
        # not measured: the self-check of the comparison, statement caches, the first touch of
        # the database pages this process maps (a hub worker process runs for hours)
        for q in warmup:
            index.candidates(conn, data_of(q))
        if barrier is not None:
            barrier.wait()
        t0, c0 = time.monotonic(), time.process_time()
        for s in range(0, len(queries), batch):
            part = queries[s : s + batch]
            t = time.perf_counter()
            if batch == 1:
                tops = [index.candidates(conn, data_of(part[0][0]), limit=1)]
            else:
                tops = index.candidates_many(conn, [data_of(q) for q, _ in part], limit=1)
            latencies.append(time.perf_counter() - t)
            for top, (_, is_known) in zip(tops, part):
                matched = bool(top) and top[0].decision == "match"
                hits += matched and is_known
                false_links += matched and not is_known
        t1, c1 = time.monotonic(), time.process_time()
    db.dispose_all()
    results.put((t0, t1, latencies, hits, false_links, c1 - c0))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=20_000, help="measured lookups: half mistyped copies of indexed persons, half new persons")
    ap.add_argument("--warmup", type=int, default=1000, help="lookups per worker process before the measurement")
    ap.add_argument("--url", default=None, help="PostgreSQL URL to create the benchmark database next to; default SQLite")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workers", type=int, default=1, help="processes doing lookups at the same time, each with its own connection")
    ap.add_argument("--batch", type=int, default=1, help="queries per call: 1 = PersonIndex.candidates, more = candidates_many")
    ap.add_argument("--keep", default=None, help="keep the loaded index for the next run: SQLite file path / PostgreSQL database name; reused if it exists")
    ap.add_argument("--refresh", action="store_true", help="with --keep: re-file records stored by another normaliser or other blocking passes")
    args = ap.parse_args()

    drop, reuse, tmp = None, False, None
    if args.url:
        name = args.keep or f"hub_mpi_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(args.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            reuse = c.exec_driver_sql("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).first() is not None
            if not reuse:
                c.exec_driver_sql(f"CREATE DATABASE {name}")
        url = str(sa.engine.make_url(args.url).set(database=name).render_as_string(hide_password=False))
        drop = None if args.keep else (admin, name)
    else:
        tmp = None if args.keep else tempfile.mkdtemp()
        path = Path(args.keep) if args.keep else Path(tmp) / "mpi.db"
        reuse = path.exists()
        url = f"sqlite:///{path}"
    try:
        migrate.upgrade(url)
        engine = db.get_engine(url)
        index = PersonIndex.load(ROOT / "contracts")
        pop = GermanPopulation(args.seed, realistic_scale=True)
        t0 = time.perf_counter()
        people = pop.persons(args.n)
        print(f"generated {args.n:,} persons in {time.perf_counter() - t0:.1f} s", flush=True)
        with db.read(engine) as c:
            have = c.execute(sa.select(sa.func.count()).select_from(persons)).scalar_one()
        if reuse and have == args.n:
            print(f"reusing the index of {have:,} persons in {url}", flush=True)
            t0 = time.perf_counter()
            changed = index.refresh(engine) if args.refresh else 0
            if changed:
                print(f"  re-filed {changed:,} records stored by another normaliser or other passes in {time.perf_counter() - t0:.1f} s", flush=True)
        else:
            if have:
                raise SystemExit(f"{url} holds {have:,} persons, not {args.n:,}: remove it or pick another --keep")
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
        warmup = pop.persons(args.warmup * args.workers)  # others again: not the measured ones
        del people
        db.dispose_all()  # the workers open their own connections

        ctx = mp.get_context("fork")
        results = ctx.Queue()
        barrier = ctx.Barrier(args.workers) if args.workers > 1 else None
        procs = [
            ctx.Process(target=lookups, args=(url, queries[w :: args.workers], warmup[w :: args.workers] or queries[:1], args.batch, barrier, results))
            for w in range(args.workers)
        ]
        for p in procs:
            p.start()
        parts = [results.get() for _ in procs]
        for p in procs:
            p.join()
        wall = max(p[1] for p in parts) - min(p[0] for p in parts)
        latencies = sorted(x for p in parts for x in p[2])
        hits, false_links = sum(p[3] for p in parts), sum(p[4] for p in parts)
        cpu = sum(p[5] for p in parts) / len(queries)
        how = "one at a time" if args.batch == 1 else f"in batches of {args.batch} (latency = one batch)"
        print(
            f"{engine.dialect.name}: N={args.n:,}, {args.workers} process(es), {how}: lookups/s {len(queries) / wall:,.0f}, "
            f"p50 {latencies[len(latencies) // 2] * 1000:.2f} ms, p95 {latencies[int(len(latencies) * 0.95)] * 1000:.2f} ms, "
            f"known found {hits / len(known):.1%}, false links {false_links / len(unknown):.2%}; "
            f"client CPU {cpu * 1000:.2f} ms per lookup"
        )
    finally:
        db.dispose_all()
        if drop:
            with drop[0].connect() as c:
                c.exec_driver_sql(f"DROP DATABASE IF EXISTS {drop[1]} WITH (FORCE)")
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Benchmark of the identity-resolution engine (not a test; run by hand).

Measures, on seeded synthetic German persons (hub.dedup.synthetic):

1. incremental matching: lookups per second and latency percentiles of ``Linker.match`` against
   an in-memory index of N persons; half the queries are mistyped copies of indexed persons
   (hit rate), half are persons not in the index (false-link rate: any ``match`` decision);
(``GermanPopulation(realistic_scale=True)``: ~10,000 surnames with a long tail, ~9,000 postcodes)

2. batch deduplication of N records (about 10 % of them duplicates of another): wall time,
   candidate pairs, precision and recall.

Targets from issue 5: >= 3,000 lookups/s, false links <= 0.3 %, batch of 1,000,000 <= 15 min.

    .venv/bin/python bench/dedup_bench.py --n 100000
    .venv/bin/python bench/dedup_bench.py            # N = 1,000,000
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.dedup.linkage import Linker  # noqa: E402
from hub.dedup.synthetic import GermanPopulation, corrupt, german_link_set  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def log(msg: str) -> None:
    print(msg, flush=True)


def bench_incremental(n: int, queries: int, seed: int, verbose: bool = False) -> dict[str, float]:
    t0 = time.perf_counter()
    a, b, _ = german_link_set(20_000, seed=seed + 1)
    model = Linker().fit(a, b).model
    log(f"trained on 20,000 + 20,000 synthetic records in {time.perf_counter() - t0:.1f} s")

    pop = GermanPopulation(seed, realistic_scale=True)
    t0 = time.perf_counter()
    persons = pop.persons(n)
    log(f"generated {n:,} persons in {time.perf_counter() - t0:.1f} s")

    linker = Linker(model)
    t0 = time.perf_counter()
    step = 100_000
    for s in range(0, n, step):
        chunk = persons[s : s + step]
        linker.add_many(chunk, [p.record_id for p in chunk])
    t_index = time.perf_counter() - t0
    # The index is millions of small lists that never die; without freezing them, every full
    # garbage collection walks all of them (pauses of a second at 1M persons).
    gc.collect()
    gc.freeze()
    log(f"indexed {n:,} persons in {t_index:.1f} s ({n / t_index:,.0f}/s), {len(linker._blocks):,} blocking keys, max RSS {rss_mb():,.0f} MB")

    r = random.Random(seed + 2)
    known_idx = [r.randrange(n) for _ in range(queries // 2)]
    known = [corrupt(persons[i], r, f"q{k}", pop) for k, i in enumerate(known_idx)]
    fresh_pop = GermanPopulation(seed + 99, realistic_scale=True)  # other seed: persons not in the index
    fresh = [replace(p, record_id=f"new{k}") for k, p in enumerate(fresh_pop.persons(queries - len(known)))]
    # warm-up
    for q in known[:200]:
        linker.match(q)
    lat: list[float] = []
    hits = 0
    for q, i in zip(known, known_idx):
        t = time.perf_counter()
        found = linker.match(q)
        lat.append(time.perf_counter() - t)
        hits += bool(found) and found[0].person_id == persons[i].record_id and found[0].decision == "match"
    false_links = 0
    examples = []
    for q in fresh:
        t = time.perf_counter()
        found = linker.match(q)
        lat.append(time.perf_counter() - t)
        if any(c.decision == "match" for c in found):
            false_links += 1
            if len(examples) < 5:
                examples.append((q, found[0], linker.explain(found[0].levels)))
    arr = np.asarray(lat) * 1000
    queries_all = known + fresh
    t = time.perf_counter()
    batch_lat: list[float] = []
    for s in range(0, len(queries_all), 256):
        tb = time.perf_counter()
        linker.match_many(queries_all[s : s + 256])
        batch_lat.append(time.perf_counter() - tb)
    batched = len(queries_all) / (time.perf_counter() - t)
    out = {
        "batched_lookups_per_s": batched,
        "batch256_p95_ms": float(np.percentile(np.asarray(batch_lat) * 1000, 95)),
        "n": n,
        "lookups_per_s": len(arr) / (arr.sum() / 1000),
        "p50_ms": float(np.percentile(arr, 50)),
        "p95_ms": float(np.percentile(arr, 95)),
        "p99_ms": float(np.percentile(arr, 99)),
        "hit_rate": hits / len(known),
        "false_link_rate": false_links / len(fresh),
        "index_s": t_index,
    }
    log(
        f"incremental: {out['lookups_per_s']:,.0f} lookups/s single-threaded, p50 {out['p50_ms']:.2f} ms, "
        f"p95 {out['p95_ms']:.2f} ms, p99 {out['p99_ms']:.2f} ms; known persons found as match {out['hit_rate']:.2%}; "
        f"false links for new persons {out['false_link_rate']:.3%} ({false_links} of {len(fresh)})"
    )
    for q, c, why in examples if verbose else ():
        log(f"  false link: {q} -> {c.record_id} {c.weight} {why}")
    log(f"incremental, batches of 256 (match_many): {batched:,.0f} lookups/s, p95 of one batch {out['batch256_p95_ms']:.1f} ms")
    del linker, persons
    gc.collect()
    return out


def bench_batch(n: int, seed: int, workers: int) -> dict[str, float]:
    pop = GermanPopulation(seed + 5, realistic_scale=True)
    r = pop.rng
    t0 = time.perf_counter()
    n_persons = int(n / 1.1)
    base = pop.persons(n_persons)
    records = [replace(p, record_id=f"r{i}") for i, p in enumerate(base)]
    copies: dict[int, list[str]] = {}
    while len(records) < n:
        i = r.randrange(n_persons)
        q = corrupt(base[i], r, f"d{len(records)}", pop, max_changes=2)
        copies.setdefault(i, [f"r{i}"]).append(q.record_id)
        records.append(q)
    truth: set[tuple[str, str]] = set()
    for ids in copies.values():  # every pair of records of one person
        truth.update(tuple(sorted((x, y))) for k, x in enumerate(ids) for y in ids[k + 1 :])
    r.shuffle(records)
    log(f"generated {n:,} records ({len(truth):,} duplicates) in {time.perf_counter() - t0:.1f} s")
    del base
    gc.collect()

    stages: dict[str, float] = {}
    last = [time.perf_counter()]

    def progress(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        stages[stage] = stages.get(stage, 0.0) + now - last[0]
        last[0] = now

    t0 = time.perf_counter()
    pairs = Linker(workers=workers).dedupe(records, fit=True, progress=progress)
    wall = time.perf_counter() - t0
    matched = {tuple(sorted((p.id_a, p.id_b))) for p in pairs if p.decision == "match"}
    tp = len(matched & truth)
    out = {
        "n": n,
        "wall_s": wall,
        "precision": tp / max(len(matched), 1),
        "recall": tp / max(len(truth), 1),
        "review": sum(p.decision == "review" for p in pairs),
    }
    log(
        f"batch dedup of {n:,} records: {wall:.0f} s wall ({wall / 60:.1f} min), max RSS {rss_mb():,.0f} MB; "
        f"precision {out['precision']:.4f}, recall {out['recall']:.4f} (pairs of records of one person), "
        f"{out['review']:,} pairs for review"
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="persons in the index / records in the batch")
    ap.add_argument("--queries", type=int, default=20_000, help="lookups (half known, half new persons)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=-1, help="threads for string similarity in the batch")
    ap.add_argument("--skip-incremental", action="store_true")
    ap.add_argument("--skip-batch", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="show examples of false links")
    args = ap.parse_args()
    if not args.skip_incremental:
        bench_incremental(args.n, args.queries, args.seed, args.verbose)
    if not args.skip_batch:
        bench_batch(args.n, args.seed, args.workers)


if __name__ == "__main__":
    main()

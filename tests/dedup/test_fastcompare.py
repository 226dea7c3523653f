"""The master person index's scalar comparison (hub/dedup/fastcompare.py) gives exactly the levels
of the vectorised one (compare.compare_pairs), and a database-backed lookup finds exactly what the
in-memory index finds."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from hub.store import db
from hub.store import migrate
from hub.dedup import fastcompare
from hub.dedup.compare import compare_pairs
from hub.dedup.linkage import Linker
from hub.dedup.person_index import FIELDS, PersonIndex
from hub.dedup.records import PersonRecord
from hub.dedup.synthetic import GermanPopulation, corrupt
from hub.ids import new_id
from hub.store.tables import person_keys, person_records, persons

ROOT = Path(__file__).resolve().parents[2]


def _pairs(n: int = 1500, seed: int = 3) -> tuple[list[PersonRecord], list[PersonRecord]]:
    """Pairs a lookup meets: mistyped copies, household members, look-alikes, strangers."""
    pop = GermanPopulation(seed)
    r = random.Random(seed)
    base = pop.persons(n)
    a, b = [], []
    for i, p in enumerate(base):
        kind = i % 4
        if kind == 0:
            q = corrupt(p, r, f"c{i}", pop)
        elif kind == 1:
            q = pop.relative(p)
        elif kind == 2:
            q = base[r.randrange(n)]
        else:
            q = corrupt(base[(i + 1) % n], r, f"x{i}", pop, max_changes=3)
        if r.random() < 0.05:
            p = PersonRecord(record_id=p.record_id, given_name=p.family_name, family_name=p.given_name, birth_date=p.birth_date, city=p.city)
        if r.random() < 0.05:
            p.ids, q.ids = {"kundennummer": str(r.randrange(3))}, {"kundennummer": str(r.randrange(3)), "bg": "1"}
        a.append(p)
        b.append(q)
    return a, b


def test_the_probe_pairs_agree() -> None:
    assert fastcompare.self_check() is None


def test_scalar_levels_equal_the_vectorised_levels_on_synthetic_pairs() -> None:
    a, b = _pairs()
    t, forms = fastcompare.normal_forms(a + b)
    n = len(a)
    want = compare_pairs(t, np.arange(n), t, np.arange(n, 2 * n))
    rows = [fastcompare.row(f) for f in forms]
    got = [fastcompare.levels(rows[i], [rows[n + i]])[0] for i in range(n)]
    bad = [(a[i], b[i], want[i].tolist(), got[i]) for i in range(n) if tuple(want[i].tolist()) != got[i]]
    assert not bad, bad[:3]
    assert len({tuple(x) for x in want.tolist()}) > 40, "the pairs must cover many level patterns"


def test_the_stored_form_round_trips_and_names_its_normaliser() -> None:
    a, b = _pairs(200)
    for form in fastcompare.normal_forms(a + b)[1]:
        s = fastcompare.encode(form)
        assert s is not None and fastcompare.decode(s) == fastcompare.row(form)
        assert fastcompare.form_of(fastcompare.decode(s)) == form
    assert fastcompare.decode("nothisone" + s[len(fastcompare.version()) :]) is None
    odd = fastcompare.normal_form(PersonRecord("x", given_name="A", ids={"k": "a\x1fb"}))
    assert fastcompare.encode(odd) is None, "a value with a separator is not stored (the data is used instead)"


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    url = f"sqlite:///{tmp_path}/mpi.db"
    migrate.upgrade(url)
    yield db.get_engine(url)
    db.dispose_all()


def _data(p: PersonRecord) -> dict:
    d = {f: getattr(p, f) for f in FIELDS if getattr(p, f)}
    if p.ids:
        d["ids"] = p.ids
    return d


def test_a_database_lookup_finds_what_the_in_memory_index_finds(engine: sa.Engine) -> None:
    index = PersonIndex.load(ROOT / "contracts")
    model = json.loads((ROOT / "contracts" / "dedup" / "model.json").read_text(encoding="utf-8"))
    memory = Linker.from_dict(model)
    memory.max_block = index.linker.max_block = 40  # so that some blocks are too big and skipped
    pop = GermanPopulation(11)
    people = pop.persons(3000)
    now = db.utcnow()
    with db.write(engine) as conn:
        for k, p in enumerate(people):
            pid, rid = f"P{k:07d}", new_id()
            filed = index.file_form(_data(p))
            # every 3rd record stored as before migration 0004 (no norm): read from its data
            conn.execute(persons.insert().values(id=pid, created_at=now))
            conn.execute(
                person_records.insert().values(
                    id=rid, person_id=pid, origin_person_id=pid, partner_id="t", local_id=p.record_id, data=_data(p),
                    norm=None if k % 3 == 0 else filed.norm, created_at=now, updated_at=now,
                )
            )
            conn.execute(person_keys.insert(), [{"key": key, "record_id": rid} for key in filed.keys])
            memory.add(p, pid)
    r = random.Random(5)
    queries = [corrupt(p, r, f"q{i}", pop) for i, p in enumerate(r.sample(people, 150))] + pop.persons(100)
    slow = PersonIndex.load(ROOT / "contracts")
    slow.linker.max_block = 40
    slow._fast = False  # as if fastcompare disagreed with compare.py: the vectorised comparison
    found = 0
    with db.read(engine) as conn:
        batch = index.candidates_many(conn, [_data(q) for q in queries], limit=50)
        slow_batch = slow.candidates_many(conn, [_data(q) for q in queries], limit=50)
        for q, many, vectorised in zip(queries, batch, slow_batch):
            got = index.candidates(conn, _data(q), limit=50)
            assert sorted((c.person_id, c.weight, c.decision) for c in vectorised) == sorted((c.person_id, c.weight, c.decision) for c in got)
            want = memory.match(q, limit=50)
            # equal weights may come in another order
            assert sorted((-c.weight, c.person_id, c.decision) for c in got) == sorted((-c.weight, c.person_id, c.decision) for c in want), q
            assert sorted((c.person_id, c.weight) for c in many) == sorted((c.person_id, c.weight) for c in got)
            found += bool(got)
    assert found > 150, "most queries have candidates"


def test_refresh_refiles_records_stored_without_a_form_or_under_other_passes(engine: sa.Engine) -> None:
    index = PersonIndex.load(ROOT / "contracts")
    people = GermanPopulation(2).persons(40)
    now = db.utcnow()
    with db.write(engine) as conn:
        for k, p in enumerate(people):
            filed = index.file_form(_data(p))
            stored = {0: (None, filed.keys), 1: (filed.norm, ["old:pass"]), 2: (filed.norm, filed.keys)}[k % 3]
            conn.execute(persons.insert().values(id=f"P{k}", created_at=now))
            conn.execute(
                person_records.insert().values(
                    id=f"R{k:03d}", person_id=f"P{k}", origin_person_id=f"P{k}", partner_id="t", local_id=str(k), data=_data(p),
                    norm=stored[0] if k % 3 != 1 else stored[0].replace(index.keys_tag, "kother"), created_at=now, updated_at=now,
                )
            )
            conn.execute(person_keys.insert(), [{"key": key, "record_id": f"R{k:03d}"} for key in stored[1]])
    assert index.refresh(engine, batch=7) == 27
    assert index.refresh(engine) == 0
    with db.read(engine) as conn:
        for k, p in enumerate(people):
            filed = index.file_form(_data(p))
            assert conn.execute(sa.select(person_records.c.norm).where(person_records.c.id == f"R{k:03d}")).scalar_one() == filed.norm
            keys = conn.execute(sa.select(person_keys.c.key).where(person_keys.c.record_id == f"R{k:03d}")).scalars().all()
            assert sorted(keys) == filed.keys


@pytest.mark.parametrize("max_block", [200, 4], ids=["blocks-fit", "one-block-crowds-the-others"])
def test_candidate_rows_are_bounded_per_key_however_they_are_fetched(engine: sa.Engine, max_block: int) -> None:
    """PersonIndex._fetch reads all keys in one IN-join with a total LIMIT on SQLite; where one big
    block could crowd out the others it falls back to the per-key bound -- the rows used are the same."""
    index = PersonIndex.load(ROOT / "contracts")
    index.linker.max_block = max_block
    now = db.utcnow()
    sizes = {"fy:big": 100, "gd:a": 2, "pd:b": 2, "ah:c": 1}
    with db.write(engine) as conn:
        for key, size in sizes.items():
            for i in range(size):
                rid = new_id()
                conn.execute(persons.insert().values(id=rid, created_at=now))
                conn.execute(person_records.insert().values(id=rid, person_id=rid, origin_person_id=rid, partner_id="t", local_id=f"{key}{i}", data={"family_name": "X"}, norm=None, created_at=now, updated_at=now))
                conn.execute(person_keys.insert().values(key=key, record_id=rid))
    keys = sorted(sizes)
    with db.read(engine) as conn:
        fetched = index._fetch(conn, keys)
        bounded = conn.exec_driver_sql(index._statement(conn, len(keys)), tuple(keys)).all()
    per_key = {k: sum(1 for r in fetched if r[0] == k) for k in keys}
    small = {k: n for k, n in sizes.items() if n <= max_block}
    assert {k: per_key[k] for k in small} == small, "a small block lost rows to a big one"
    assert all(per_key[k] > max_block for k, n in sizes.items() if n > max_block), "a big block must still be recognisable as too big"
    assert {(r[0], r[1]) for r in fetched if r[0] in small} == {(r[0], r[1]) for r in bounded if r[0] in small}

"""The console's queries over a message store of 1,000,000 messages: p50/p95 of each, on SQLite or PostgreSQL.

Usage:
  .venv/bin/python bench/console_bench.py [--messages 1000000] [--runs 40] [--reuse PATH] [--database-url URL]

Seeds a store directly (bulk executemany on SQLite, COPY on PostgreSQL; the secondary indexes are
dropped during the load and built again after it): 40 partners (a Jobcenter, two municipal offices,
37 providers) sending their message types over 35 days with a working-day profile, statuses
routed 62 %, delivered 25 %, rejected 6 %, duplicate 3 %, dead 1 %, still received 0.5 % (the last
hour), each with its history (received, validated, decoded, the case, its outcome), a delivery and
a quittung per processed message, 20,000 cases with the Jobcenter's and a provider's reference,
dead letters (a third of them replayed) and an outbox backlog; then rolls the flow counters up (and
reports how long an hour takes). `--reuse PATH` keeps the SQLite file: seeded once, measured many
times. Each query runs `--runs` times with parameters drawn at random (another partner, case,
type, cursor each time); the plans of the searches are printed, and a full scan of messages fails
the run. The targets: p95 under 300 ms for every figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub.ids import _b32  # noqa: E402
from hub.store import db, flows, migrate, search  # noqa: E402
from hub.store import dead_letters as dead  # noqa: E402
from hub.store.message_store import message_view  # noqa: E402
from hub.transport.embedded import EmbeddedTransport  # noqa: E402

DAYS = 35
JOBCENTER = "jobcenter-musterstadt"
MUNICIPAL = ["kommune-altstadt", "kommune-neustadt"]
PROVIDERS = [f"traeger-{i:02d}" for i in range(37)]
AGENCY_TYPES = ["zuweisung.kontakt.1010", "zuweisung.anmeldung.1020", "teilnahme.aenderung.2020", "person.stammdaten.0100"]
PROVIDER_TYPES = [
    "teilnahme.anwesenheit.2030", "teilnahme.mitwirkung.2040", "teilnahme.eintritt.2010", "teilnahme.austritt.2050",
    "zuweisung.rueckmeldung.1030", "bericht.beurteilung.3010", "abrechnung.monat.4010",
]
PROVIDER_WEIGHTS = [40, 8, 10, 8, 10, 6, 18]
STATUSES = ["routed", "delivered", "rejected", "duplicate", "dead"]
STATUS_WEIGHTS = [62, 25, 6, 3, 1]
OUTCOME = {"routed": ["routed"], "delivered": ["routed", "delivered"], "rejected": ["rejected"], "duplicate": ["duplicate"], "dead": ["dead"]}
STAGE = {"routed": "routing", "delivered": "delivery", "rejected": "pipeline", "duplicate": "dedup", "dead": "pipeline", "received": "ingress"}
N_CASES = 20_000
QUITTUNG = "administration.quittung.0020"


def ulid(t: float, rng: random.Random) -> str:
    return _b32(int(t * 1000), 10) + _b32(rng.getrandbits(80), 16)


def sqlite_ts(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")


class Loader:
    """Rows into one table, in chunks: executemany on SQLite, COPY on PostgreSQL."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.pg = engine.dialect.name == "postgresql"
        self.raw = engine.raw_connection()

    def ts(self, t: dt.datetime) -> object:
        return t if self.pg else sqlite_ts(t)

    def js(self, value: object) -> object:
        return json.dumps(value) if value is not None else None

    def begin(self) -> None:
        if not self.pg:  # the hub's SQLite connections commit each statement unless told BEGIN
            self.raw.cursor().execute("BEGIN")

    def load(self, table: str, columns: list[str], rows: list[tuple]) -> None:
        cur = self.raw.cursor()
        if self.pg:
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows)
        cur.close()

    def indexes(self) -> list[tuple[str, str]]:
        """(name, DDL) of the secondary indexes of the tables the load fills."""
        tables = ("messages", "message_events", "deliveries", "message_cases", "case_members", "dead_letters")
        with self.engine.connect() as conn:
            if self.pg:
                rows = conn.execute(sa.text(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(:t) AND indexname LIKE 'ix_%'"), {"t": list(tables)}).all()
            else:
                rows = conn.execute(sa.text(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND name LIKE 'ix_%' "
                    f"AND tbl_name IN ({', '.join(repr(t) for t in tables)})")).all()
        return [(r[0], r[1]) for r in rows]

    def commit(self) -> None:
        if self.pg:
            self.raw.commit()
        else:
            self.raw.cursor().execute("COMMIT")


def seed(engine: sa.Engine, n: int, rng: random.Random) -> None:
    started = time.perf_counter()
    loader = Loader(engine)
    kept = loader.indexes()
    with engine.begin() as conn:
        for name, _ in kept:
            conn.execute(sa.text(f"DROP INDEX {name}"))
    now = dt.datetime.now(dt.timezone.utc)
    start = now - dt.timedelta(days=DAYS)
    loader.begin()
    # cases: the Jobcenter's Kundennummer and one provider's pseudonymous id each
    case_rows, member_rows, case_provider = [], [], []
    for i in range(N_CASES):
        case_id = ulid(start.timestamp() + i, rng)
        provider = PROVIDERS[i % len(PROVIDERS)]
        case_rows.append((case_id, JOBCENTER, f"{100000 + i:06d}D{i % 10000:04d}", None, loader.ts(start), "open"))
        member_rows.append((case_id, JOBCENTER, "owner", f"{100000 + i:06d}D{i % 10000:04d}", loader.ts(start)))
        member_rows.append((case_id, provider, "provider", f"F-{i:012d}", loader.ts(start)))
        case_provider.append((case_id, provider))
    loader.load("cases", ["id", "owner", "customer_number", "bg_number", "created_at", "status"], case_rows)
    loader.load("case_members", ["case_id", "partner_id", "role", "local_ref", "joined_at"], member_rows)
    loader.commit()
    by_provider: dict[str, list[str]] = {}
    for case_id, provider in case_provider:
        by_provider.setdefault(provider, []).append(case_id)
    # times: working days and hours carry most of the traffic, a background at night
    span = DAYS * 86400
    chunk = 100_000
    raw = os.urandom(400)
    made = 0
    dl_id = 0
    while made < n:
        k = min(chunk, n - made)
        times = []
        while len(times) < k:
            t = start.timestamp() + rng.random() * span
            d = dt.datetime.fromtimestamp(t, dt.timezone.utc)
            weight = (1.0 if d.weekday() < 5 else 0.15) * (1.0 if 7 <= d.hour < 17 else 0.1)
            if rng.random() < weight:
                times.append(t)
        times.sort()
        loader.begin()
        messages, events, deliveries, cases_of, dead_rows = [], [], [], [], []
        for t in times:
            at = dt.datetime.fromtimestamp(t, dt.timezone.utc)
            mid = ulid(t, rng)
            r = rng.random()
            if r < 0.22:
                sender, mtype = JOBCENTER, rng.choice(AGENCY_TYPES)
                case_id, recipient = rng.choice(case_provider) if mtype != "person.stammdaten.0100" else (None, rng.choice(MUNICIPAL))
            elif r < 0.27:
                sender, mtype, case_id, recipient = rng.choice(MUNICIPAL), "person.stammdaten.0100", None, JOBCENTER
            else:
                sender = rng.choice(PROVIDERS)
                mtype = rng.choices(PROVIDER_TYPES, PROVIDER_WEIGHTS)[0]
                case_id, recipient = rng.choice(by_provider[sender]), JOBCENTER
            status = "received" if now.timestamp() - t < 600 and rng.random() < 0.5 else rng.choices(STATUSES, STATUS_WEIGHTS)[0]
            done = at + dt.timedelta(seconds=rng.uniform(0.05, 2))
            end = done + dt.timedelta(hours=rng.uniform(0.1, 20)) if status == "delivered" else done
            if end > now:
                end = done
            messages.append((
                mid, sender, f"{rng.getrandbits(64):016x}-{made:08d}", mtype, "1.0", "provider-json" if sender in PROVIDERS else "agency-xml",
                status, f"c-{rng.getrandbits(48):012x}", None, False, f"{rng.getrandbits(128):032x}", raw[: 200 + (made % 200)],
                loader.ts(at), loader.ts(end),
            ))
            events.append((mid, loader.ts(at), "ingress", "received", loader.js({"sender": sender, "message_type": mtype, "bytes": 512})))
            events.append((mid, loader.ts(at), "ingress", "validated", loader.js({"contract": f"{mtype} 1.0"})))
            if status != "received":
                events.append((mid, loader.ts(done), "pipeline", "decoded", None))
                if case_id:
                    events.append((mid, loader.ts(done), "chain", "case", loader.js({"case": case_id})))
                    cases_of.append((case_id, mid))
                for o in OUTCOME[status]:
                    events.append((mid, loader.ts(end if o == "delivered" else done), STAGE[o], o, None))
            if status in ("routed", "delivered"):
                acked = loader.ts(end) if status == "delivered" else None
                st = "acknowledged" if status == "delivered" else "pending"
                deliveries.append((ulid(done.timestamp(), rng), mid, recipient, mtype, "1.0", "agency-xml", "application/xml", "reporting", st, b"<x/>", loader.ts(done), acked))
                deliveries.append((ulid(done.timestamp(), rng), mid, sender, QUITTUNG, "1.0", "agency-xml", "application/xml", "receipt", st, b"<q/>", loader.ts(done), acked))
            if status == "dead":
                dl_id += 1
                replayed = loader.ts(done + dt.timedelta(minutes=5)) if rng.random() < 0.33 and done + dt.timedelta(minutes=5) < now else None
                reason = rng.choice(["gave up after 5 attempts; last error: OperationalError", "gave up after 5 attempts; last error: timeout", "returned unroutable"])
                dead_rows.append((dl_id, "pipeline", loader.js({"message_id": mid}), 5, reason, mid, loader.ts(done), replayed))
            made += 1
        loader.load("messages", ["id", "sender", "message_uuid", "message_type", "version", "format", "status", "correlation_id",
                                 "reference_uuid", "test", "content_hash", "raw", "created_at", "updated_at"], messages)
        loader.load("message_events", ["message_id", "at", "stage", "event", "detail"], events)
        loader.load("deliveries", ["id", "message_id", "recipient", "message_type", "version", "format", "content_type", "purpose",
                                   "status", "body", "created_at", "acked_at"], deliveries)
        loader.load("message_cases", ["case_id", "message_id"], cases_of)
        loader.load("dead_letters", ["id", "queue", "payload", "attempts", "reason", "message_id", "at", "replayed_at"], dead_rows)
        loader.commit()
        print(f"  seeded {made:,} messages ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    backlog = [("pipeline", loader.js({"message_id": f"B{i:025d}"}), time.time(), 0, loader.ts(now - dt.timedelta(seconds=300 - i / 10)), None)
               for i in range(500)]
    loader.begin()
    loader.load("outbox", ["queue", "payload", "available_at", "attempts", "created_at", "last_error"], backlog)
    loader.commit()
    with engine.begin() as conn:
        for name, ddl in kept:
            t = time.perf_counter()
            conn.execute(sa.text(ddl))
            print(f"  index {name}: {time.perf_counter() - t:.0f} s", file=sys.stderr)
        conn.execute(sa.text("ANALYZE"))
    print(f"seeded {n:,} messages in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def roll_up(engine: sa.Engine) -> dict[str, float]:
    t = time.perf_counter()
    hours = 0
    while True:
        with db.write(engine) as conn:
            done = flows.roll_up(conn)
        if not done:
            break
        hours += done
    total = time.perf_counter() - t
    return {"hours": hours, "seconds": round(total, 1), "ms_per_hour": round(total / hours * 1000, 1) if hours else 0.0}


def measure(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    fn()  # warm
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]


def plan(conn: sa.Connection, statement: sa.Select) -> list[str]:
    compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
    rows = conn.exec_driver_sql(prefix + str(compiled)).all()
    return [r[-1] if conn.dialect.name == "sqlite" else r[0] for r in rows]


def full_scan(lines: list[str], dialect: str) -> bool:
    if dialect == "sqlite":
        return any(line.strip() == "SCAN messages" or line.startswith("SCAN messages ") and "INDEX" not in line for line in lines)
    return any("Seq Scan on messages" in line for line in lines)


def sample(engine: sa.Engine, rng: random.Random) -> dict[str, list]:
    with db.read(engine) as conn:
        ids = [r[0] for r in conn.execute(sa.text("SELECT id FROM messages ORDER BY random() LIMIT 2000"))]
        refs = [r[0] for r in conn.execute(sa.text("SELECT local_ref FROM case_members ORDER BY random() LIMIT 500"))]
    return {"ids": ids, "refs": refs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--reuse", type=Path, help="SQLite file to seed once and measure again")
    parser.add_argument("--database-url", help="PostgreSQL (postgresql+psycopg://...): seeded afresh unless it holds messages")
    parser.add_argument("--only", default="", help="measure only the queries whose name contains this text")
    args = parser.parse_args()
    rng = random.Random(4)
    if args.database_url:
        url = args.database_url
    else:
        path = args.reuse or Path(f"/tmp/console-bench-{os.getpid()}.db")
        url = f"sqlite:///{path}"
    migrate.upgrade(url)
    engine = db.get_engine(url)
    with engine.connect() as conn:
        have = conn.execute(sa.text("SELECT count(*) FROM messages")).scalar_one()
    if have == 0:
        seed(engine, args.messages, rng)
    else:
        print(f"reusing {have:,} messages at {url.split('@')[-1]}", file=sys.stderr)
    rolled = roll_up(engine)
    print(f"roll-up: {rolled}", file=sys.stderr)
    s = sample(engine, rng)
    partners = [JOBCENTER, *MUNICIPAL, *PROVIDERS]
    now = dt.datetime.now(dt.timezone.utc)

    def f(**kw: object) -> search.MessageFilter:
        return search.MessageFilter.parse(**kw)

    def mid_cursor() -> str:
        return rng.choice(s["ids"])

    searches: dict[str, Callable[[], search.MessageFilter]] = {
        "search: newest, no filter": lambda: f(),
        "search: by id": lambda: f(id=rng.choice(s["ids"])),
        "search: partner (either side)": lambda: f(partner=rng.choice(PROVIDERS)),
        "search: Jobcenter (either side)": lambda: f(partner=JOBCENTER),
        "search: partner as sender": lambda: f(partner=rng.choice(partners), role="sender"),
        "search: partner as recipient": lambda: f(partner=rng.choice(partners), role="recipient"),
        "search: message type": lambda: f(message_type=rng.choice(PROVIDER_TYPES + AGENCY_TYPES)),
        "search: status dead": lambda: f(status="dead"),
        "search: status routed": lambda: f(status="routed"),
        "search: case reference": lambda: f(case_ref=rng.choice(s["refs"])),
        "search: one day": lambda: f(received_from=now - dt.timedelta(days=rng.randint(2, 30)), received_to=now - dt.timedelta(days=1)),
        "search: partner + type": lambda: f(partner=rng.choice(PROVIDERS), message_type=rng.choice(PROVIDER_TYPES)),
        "search: partner + rejected": lambda: f(partner=rng.choice(PROVIDERS), status="rejected"),
        "search: type + dead + a week": lambda: f(message_type=rng.choice(PROVIDER_TYPES), status="dead", received_from=now - dt.timedelta(days=7)),
        "search: Jobcenter + type + rejected": lambda: f(partner=JOBCENTER, message_type=rng.choice(PROVIDER_TYPES), status="rejected"),
        "search: case + type": lambda: f(case_ref=rng.choice(s["refs"]), message_type="teilnahme.anwesenheit.2030"),
        "search: a later page (cursor)": lambda: f(cursor=mid_cursor()),
        "search: partner, a later page": lambda: f(partner=rng.choice(PROVIDERS), cursor=mid_cursor()),
    }
    failures = []
    results: list[tuple[str, float, float]] = []

    def add(name: str, fn: Callable[[], object], runs: int) -> None:
        if args.only in name:
            results.append((name, *measure(fn, runs)))

    with db.read(engine) as conn:
        for name, make in searches.items():
            for statement in search.statements(conn, make()):
                lines = plan(conn, statement)
                print(f"plan {name}:\n    " + "\n    ".join(lines), file=sys.stderr)
                if full_scan(lines, engine.dialect.name):
                    failures.append(f"{name}: full scan of messages")
        for name, make in searches.items():
            add(name, lambda: search.search(conn, make()), args.runs)
        add("message timeline (message_view)", lambda: message_view(conn, rng.choice(s["ids"]), None), args.runs)
        cold = lambda fn: (flows._sums.clear(), fn())  # noqa: E731 - the first view after a roll-up: no cached sums
        add("flows: every partner and type, 1 h / 24 h / 30 d", lambda: flows.flows(conn), args.runs)
        add("flows: the same, first view in the hour", lambda: cold(lambda: flows.flows(conn)), args.runs)
        add("flows: one partner (first view)", lambda: cold(lambda: flows.flows(conn, partner=rng.choice(PROVIDERS))), args.runs)
        add("series: 24 hours", lambda: flows.series(conn, "hour"), args.runs)
        add("series: 30 days", lambda: flows.series(conn, "day"), args.runs)
        add("series: 30 days, first view in the hour", lambda: cold(lambda: flows.series(conn, "day")), args.runs)
        add("series: 30 days, one partner and type (first view)",
            lambda: cold(lambda: flows.series(conn, "day", partner=rng.choice(PROVIDERS), message_type=rng.choice(PROVIDER_TYPES))), args.runs)
        transport = EmbeddedTransport(engine, visibility_timeout=30, max_attempts=5, poll_interval=1)
        add("queue depths (embedded)", transport.queue_depths, args.runs)
        df = dead.DeadLetterFilter
        add("dead letters: newest page", lambda: dead.page(conn, df()), args.runs)
        add("dead letters: partner page", lambda: dead.page(conn, df(partner=rng.choice(PROVIDERS))), args.runs)
        add("dead letters: reason + a week", lambda: dead.page(conn, df(reason="timeout", at_from=now - dt.timedelta(days=7))), args.runs)
        add("dead letters: count, waiting", lambda: dead.count(conn, df()), args.runs)
        add("dead letters: count, Jobcenter + type",
            lambda: dead.count(conn, df(partner=JOBCENTER, message_type=rng.choice(AGENCY_TYPES))), args.runs)
    width = max((len(r[0]) for r in results), default=5)
    print(f"{'query':<{width}}  p50 ms  p95 ms")
    for name, p50, p95 in results:
        mark = "" if p95 < 300 else "  <-- over 300 ms"
        print(f"{name:<{width}}  {p50:6.1f}  {p95:6.1f}{mark}")
        if p95 >= 300:
            failures.append(f"{name}: p95 {p95:.0f} ms")
    print(json.dumps({"database": engine.dialect.name, "messages": have or args.messages, "runs": args.runs, "rollup": rolled,
                      "results": {n: [round(a, 1), round(b, 1)] for n, a, b in results}, "failures": failures}))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

"""How long the controlling figures and the case report take on a large store (not part of the test suite).

Fills a fresh database with a synthetic store -- CASES cases of three Jobcenters, two links each at
twenty providers' measures, twenty-one messages per link over ten months (four history entries and
a delivery each; 1 % refused, 1 % caught as duplicates) recorded as attendance, assessments,
cooperation feedbacks, decisions and invoice lines, ten deadlines per link -- then times each
controlling function for one quarter and for all time, in the operator's scope and in one agency's,
and the case report of one case (build, HTML, PDF), best of RUNS.

    .venv/bin/python bench/controlling_bench.py                        # SQLite and PostgreSQL (HUB_TEST_PG_URL)
    .venv/bin/python bench/controlling_bench.py --cases 5000 --backends sqlite

Creates its own SQLite file and PostgreSQL database (on HUB_TEST_PG_URL) and removes them afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub.chain import controlling  # noqa: E402
from hub.config import Settings  # noqa: E402
from hub.reports import case_report, render  # noqa: E402
from hub.runtime import Hub  # noqa: E402
from hub.store import db, migrate  # noqa: E402
from hub.store.tables import case_members, cases, chain_deadlines, chain_events, chain_links, deliveries, message_events, messages  # noqa: E402

OWNERS = ("jobcenter-musterstadt", "jobcenter-nord", "jobcenter-sued")
PROVIDERS = [f"traeger-{n:02d}" for n in range(20)]
KINDS = ["attendance"] * 12 + ["assessment", "cooperation", "decision"] + ["invoice"] * 6
DESTINATIONS = ["beschaeftigung_svp", "arbeitsuchend", "weitere_massnahme", "ausbildung", None]
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def ulid(prefix: str, n: int) -> str:
    return f"{prefix}{n:024d}"[:26]


def fill(engine: sa.Engine, n_cases: int, seed: int = 7) -> dict[str, int]:
    rnd = random.Random(seed)
    rows: dict[sa.Table, list[dict]] = {t: [] for t in (cases, case_members, chain_links, chain_events, chain_deadlines, messages, message_events, deliveries)}
    counts = dict.fromkeys(("cases", "links", "events", "deadlines", "messages"), 0)
    msg_n = 0

    def flush(force: bool = False) -> None:
        if force or len(rows[chain_events]) > 20_000:
            with db.write(engine) as conn:
                for table, batch in rows.items():
                    if batch:
                        conn.execute(table.insert(), batch)
                        batch.clear()

    for c in range(n_cases):
        case_id, owner = ulid("C", c), OWNERS[c % len(OWNERS)]
        rows[cases].append({"id": case_id, "owner": owner, "customer_number": f"{c:03d}D{c:06d}"[:10], "bg_number": None,
                            "person_id": None, "created_at": T0, "status": "open", "closed_at": None})
        rows[case_members].append({"case_id": case_id, "partner_id": owner, "role": "owner", "local_ref": f"K{c}", "joined_at": T0})
        counts["cases"] += 1
        for k in range(2):
            link_id, provider = ulid("L", c * 2 + k), rnd.choice(PROVIDERS)
            measure = f"962-{provider[-2:]}-{rnd.randrange(3)}"
            status = rnd.choice(["started", "ended", "ended", "declined", "not_started"])
            started = status in ("started", "ended")
            rows[chain_links].append({
                "id": link_id, "case_id": case_id, "partner_id": provider, "measure_number": measure, "status": status, "branch": "06",
                "period_start": dt.date(2026, 1, 1), "period_end": dt.date(2026, 12, 31), "weekly_hours": 25,
                "start_date": dt.date(2026, 1, 5) if started else None, "end_date": dt.date(2026, 9, 30) if status == "ended" else None,
                "outcome": rnd.choice(["regulaer", "abbruch"]) if status == "ended" else None, "outcome_reason": None,
                "destination": rnd.choice(DESTINATIONS) if status == "ended" else None, "test": False, "opened_at": T0, "updated_at": T0,
            })
            counts["links"] += 1
            for e, kind in enumerate(KINDS):
                msg_n += 1
                message_id = ulid("M", msg_n)
                roll = rnd.random()
                state = "rejected" if roll < 0.01 else "duplicate" if roll < 0.02 else "routed"
                at = T0 + dt.timedelta(days=e * 15)
                rows[messages].append({
                    "id": message_id, "sender": provider, "message_uuid": str(uuid.UUID(int=msg_n)), "message_type": "teilnahme.anwesenheit.2030",
                    "version": "1.0", "format": "provider-json", "status": state, "correlation_id": "x", "reference_uuid": None, "test": False,
                    "content_hash": "0" * 64, "raw": None, "created_at": at, "updated_at": at,
                })
                for stage, event in (("ingress", "received"), ("ingress", "validated"), ("pipeline", "decoded"), ("routing", "routed")):
                    rows[message_events].append({"message_id": message_id, "at": at, "stage": stage, "event": event, "detail": None})
                counts["messages"] += 1
                if state == "duplicate":
                    rows[message_events].append({"message_id": message_id, "at": at, "stage": "dedup", "event": "duplicate",
                                                 "detail": {"of": ulid("M", msg_n - 1)}})
                if state != "routed":
                    continue
                rows[deliveries].append({"id": ulid("V", msg_n), "message_id": message_id, "recipient": owner, "message_type": "teilnahme.anwesenheit.2030",
                                         "version": "1.0", "format": "agency-xml", "content_type": "application/xml", "purpose": "teilnahmenachweis",
                                         "status": "acknowledged", "body": None, "created_at": at, "acked_at": at})
                detail = {"amount": f"{rnd.randrange(5000, 30000) / 100:.2f}", "month": "2026-03"} if kind == "invoice" else None
                rows[chain_events].append({"case_id": case_id, "link_id": link_id, "at": at, "kind": kind, "message_id": message_id,
                                           "message_type": "teilnahme.anwesenheit.2030", "status_from": None, "status_to": None, "detail": detail})
                counts["events"] += 1
            for m in range(10):
                due = dt.date(2026, 1 + m, 8)
                state = rnd.choice(["met", "met", "met", "missed", "open", "cancelled"])
                met_on = due + dt.timedelta(days=rnd.choice([-3, -1, 0, 2])) if state == "met" or (state == "missed" and rnd.random() < 0.5) else None
                rows[chain_deadlines].append({
                    "id": ulid("D", counts["deadlines"]), "key": f"{link_id}:attendance:{m}", "case_id": case_id, "link_id": link_id,
                    "partner_id": provider, "kind": "attendance", "message_type": "teilnahme.anwesenheit.2030", "month": f"2026-{m + 1:02d}",
                    "task_id": None, "due_on": due, "status": state, "rule_id": "next-attendance-due", "rule_version": "2-x", "created_at": T0,
                    "resolved_at": None, "met_on": met_on, "met_by": None,
                })
                counts["deadlines"] += 1
        flush()
    flush(force=True)
    return counts


def best_ms(runs: int, work) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return round(min(times), 1)


def run(url: str, n_cases: int, runs: int) -> dict:
    migrate.upgrade(url)
    engine = db.get_engine(url)
    started = time.perf_counter()
    counts = fill(engine, n_cases)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # what autovacuum keeps up on a live store: statistics, and (PostgreSQL) the visibility map index-only scans need
        conn.exec_driver_sql("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE")
    out: dict = {"store": counts, "fill_s": round(time.perf_counter() - started, 1)}
    definition = controlling.definition((ROOT / "contracts").resolve())
    today = dt.date(2026, 12, 4)
    quarter = controlling.Period(dt.date(2026, 4, 1), dt.date(2026, 7, 1))
    timings = {}
    with db.read(engine) as conn:
        for scope, owner in (("operator", None), ("agency", OWNERS[0])):
            for span, period in (("quarter", quarter), ("all time", controlling.ALWAYS)):
                timings[f"measure_figures ({scope}, {span})"] = best_ms(runs, lambda: controlling.measure_figures(conn, definition, owner, period=period))
                timings[f"sender_figures ({scope}, {span})"] = best_ms(runs, lambda: controlling.sender_figures(conn, owner, period=period))
                timings[f"partner_deadlines ({scope}, {span})"] = best_ms(runs, lambda: controlling.partner_deadlines(conn, owner, today=today, period=period))
        rows = controlling.measure_figures(conn, definition)
        timings["to_csv (measure rows)"] = best_ms(runs, lambda: controlling.to_csv(rows))
    hub = Hub(Settings(database_url=url, contracts_dir=ROOT / "contracts"))

    def report() -> case_report.CaseReport:
        with db.write(engine) as conn:
            return case_report.build(conn, hub, ulid("C", n_cases // 2), viewer="bench", operator=True, today=today)

    timings["case report: build"] = best_ms(runs, report)
    built = report()
    timings["case report: HTML"] = best_ms(runs, lambda: render.render_html(built))
    timings["case report: PDF"] = best_ms(max(1, runs // 2), lambda: render.render_pdf(built))
    out["ms"] = timings
    out["measure_rows"] = len(rows)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    args = parser.parse_args()
    out: dict = {}
    backends = args.backends.split(",")
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory() as tmp:
            out["sqlite"] = run(f"sqlite:///{tmp}/controlling.db", args.cases, args.runs)
            db.dispose_all()
    if "postgres" in backends:
        from tests.integration.services import postgres_database  # a fresh database, dropped afterwards

        with postgres_database() as url:
            out["postgres"] = run(url, args.cases, args.runs)
    print(json.dumps(out, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()

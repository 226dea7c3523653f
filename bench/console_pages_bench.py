"""The console's pages over a large message store, as a browser asks for them: p50/p95 per page.

Usage:
  .venv/bin/python bench/console_bench.py --reuse /var/tmp/console.db --runs 1    # seed 1,000,000 messages once
  .venv/bin/python bench/console_pages_bench.py --db /var/tmp/console.db [--runs 40]

Starts `hub serve --role api` on the seeded SQLite file (no workers: nothing else writes while it is
measured), adds an operator and an auditor account, signs in over HTTP as a browser does, and times
each page end to end -- the queries, the audit entry, the template, the HTTP round trip -- with
parameters drawn at random each run (another partner, message, case). The target: p95 under 300 ms
for every page (docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub.console import accounts  # noqa: E402
from hub.store import db  # noqa: E402

PASSWORD = "bench-passwort-12345"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accounts(url: str) -> None:
    engine = db.create(url)
    with db.write(engine) as conn:
        known = {r.login for r in conn.execute(sa.text("SELECT login FROM console_users"))}
        for login, role in (("bench-operator", "operator"), ("bench-auditor", "auditor")):
            if login not in known:
                accounts.add(conn, login, role, PASSWORD)
    engine.dispose()


def _samples(url: str) -> dict[str, list[str]]:
    engine = db.create(url)
    with db.read(engine) as conn:
        q = lambda sql: [r[0] for r in conn.execute(sa.text(sql))]  # noqa: E731
        found = {
            "message": q("SELECT id FROM messages ORDER BY random() LIMIT 200"),
            "partner": q("SELECT DISTINCT sender FROM messages LIMIT 40"),
            "type": q("SELECT DISTINCT message_type FROM messages LIMIT 20"),
            "case": q("SELECT local_ref FROM case_members ORDER BY random() LIMIT 200"),
            "dead": q("SELECT message_id FROM dead_letters WHERE message_id IS NOT NULL ORDER BY random() LIMIT 200"),
        }
    engine.dispose()
    return found


def _sign_in(base: str, login: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30, follow_redirects=False)
    page = client.get("/ops/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    answer = client.post("/ops/login", data={"csrf_token": token, "login": login, "password": PASSWORD})
    assert answer.status_code == 303, f"{login} could not sign in: {answer.status_code}"
    return client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="a SQLite store seeded by bench/console_bench.py --reuse")
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    url = f"sqlite:///{args.db.resolve()}"
    _accounts(url)
    pick = _samples(url)
    port = _port()
    env = {**os.environ, "HUB_DATABASE_URL": url, "HUB_CONTRACTS_DIR": str(ROOT / "contracts"), "HUB_LOG_LEVEL": "warning", "HUB_LOG_FORMAT": "json"}
    server = subprocess.Popen([sys.executable, "-m", "hub.cli", "serve", "--role", "api", "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        operator, auditor = _sign_in(base, "bench-operator"), _sign_in(base, "bench-auditor")
        r = random.Random(7)
        pages: list[tuple[str, httpx.Client, Callable[[], str]]] = [
            ("flows", operator, lambda: "/ops/flows"),
            ("flows of a partner", operator, lambda: f"/ops/flows?partner={r.choice(pick['partner'])}"),
            ("flows, 30 days chart", operator, lambda: "/ops/flows?span=day"),
            ("search by id", operator, lambda: f"/ops/messages?id={r.choice(pick['message'])}"),
            ("search by partner", operator, lambda: f"/ops/messages?partner={r.choice(pick['partner'])}"),
            ("search by type and status", operator, lambda: f"/ops/messages?message_type={r.choice(pick['type'])}&status=rejected"),
            ("search by case reference", operator, lambda: f"/ops/messages?case_ref={r.choice(pick['case'])}"),
            ("a message's timeline", operator, lambda: f"/ops/messages/{r.choice(pick['message'])}"),
            ("dead letters", operator, lambda: "/ops/dead"),
            ("dead letters of a partner", operator, lambda: f"/ops/dead?partner={r.choice(pick['partner'])}"),
            ("cases", operator, lambda: "/ops/cases"),
            ("audit log", auditor, lambda: "/ops/audit"),
        ]
        print(f"{'page':<28} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        worst = 0.0
        for name, client, path in pages:
            client.get(path())  # warm: templates compiled, caches filled as in a running hub
            times = []
            for _ in range(args.runs):
                target = path()
                start = time.perf_counter()
                answer = client.get(target)
                times.append((time.perf_counter() - start) * 1000)
                assert answer.status_code == 200, f"{target}: {answer.status_code}"
            times.sort()
            p95 = times[max(0, int(round(0.95 * len(times))) - 1)]
            worst = max(worst, p95)
            print(f"{name:<28} {statistics.median(times):8.1f} {p95:8.1f} {times[-1]:8.1f}")
        print(f"worst p95: {worst:.1f} ms (target 300 ms)")
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()

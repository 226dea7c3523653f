"""CPU per message of ingress.accept and of the embedded pipeline, in one process, without HTTP.

Usage: .venv/bin/python bench/pipeline_bench.py  (N=1000 reports after 100 unmeasured; PROFILE=1
prints a cProfile of the pipeline part; REPORT=teilnahme.mitwirkung.2040 sends cooperation feedbacks,
which the end-to-end benchmark sends, instead of monthly attendance; with PROFILE=1, CALLEES=REGEX also prints
what the matching functions call). Run two versions of the code alternately to compare them."""
import os, sys, tempfile, time, cProfile, pstats, json
from pathlib import Path
root = Path(os.environ.get("ROOT", Path(__file__).resolve().parents[1]))
from hub.endpoints import ingress
from hub.store import db
from hub.store.tables import deliveries
from hub.config import Settings
from hub.runtime import Hub
from hub.samples import samples
from hub import pipeline
from hub.canonical import Message

N = int(os.environ.get("N", "1000"))
from hub import logs
logs.configure("json", os.environ.get("LEVEL", "info"))
tmp = tempfile.mkdtemp()
hub = Hub(Settings(database_url=f"sqlite:///{tmp}/hub.db", broker_url="embedded", contracts_dir=root / "contracts", poll_interval=0.01))
hub.migrate()
enc = lambda fmt, d: hub.adapter(fmt).encode(Message.build(d["header"], d["body"]))
handler = pipeline.consumer(hub)

def drain():
    while items := hub.transport.claim("pipeline", lambda *a: None):
        hub.transport.process_batch(items, handler)

a = samples("agency-xml", fresh=True)["zuweisung.anmeldung.1020"]
ingress.accept(hub, hub.partners["jobcenter-musterstadt"], enc("agency-xml", a), "application/xml")
drain()
with db.read(hub.engine) as conn:
    body = conn.execute(deliveries.select().where(deliveries.c.recipient == "traeger-bildungswerk")).first().body
case_id = hub.adapter("provider-json").decode(body).body.case_id
bodies = []
REPORT = os.environ.get("REPORT", "teilnahme.anwesenheit.2030")
for i in range(N + 100):
    r = samples("provider-json", fresh=True, case_id=case_id)[REPORT]
    if REPORT != "teilnahme.anwesenheit.2030":
        r["body"]["facts"] = f"Bericht {i}"
        bodies.append(enc("provider-json", r))
        continue
    r["body"]["month"] = f"{2000 + i // 12:04d}-{i % 12 + 1:02d}"
    r["body"]["days"] = [dict(d, date=f"{2000 + i // 12:04d}-{i % 12 + 1:02d}-0{k + 1}") for k, d in enumerate(r["body"]["days"])]
    bodies.append(enc("provider-json", r))
provider = hub.partners["traeger-bildungswerk"]
for b in bodies[:100]:  # warm-up
    ingress.accept(hub, provider, b, "application/json")
drain()
prof = cProfile.Profile() if os.environ.get("PROFILE") else None
t0 = time.process_time()
for b in bodies[100:]:
    ingress.accept(hub, provider, b, "application/json")
t1 = time.process_time()
if prof: prof.enable()
drain()
if prof: prof.disable()
t2 = time.process_time()
with db.read(hub.engine) as conn:
    import sqlalchemy as sa
    routed = conn.execute(sa.text("select status, count(*) from messages group by status")).all()
print(json.dumps({"root": str(root), "accept_ms": round((t1 - t0) / N * 1000, 3), "pipeline_ms": round((t2 - t1) / N * 1000, 3), "status": [tuple(r) for r in routed]}))
if prof:
    stats = pstats.Stats(prof).sort_stats("cumulative")
    stats.print_stats(40)
    if os.environ.get("CALLEES"):
        stats.print_callees(os.environ["CALLEES"])

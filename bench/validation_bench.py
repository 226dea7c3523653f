"""Benchmark: the worst messages a partner can send at HUB_MAX_MESSAGE_BYTES, through the ingress check
(not a test; run by hand). Each body fails in as many places as fit into the size limit; the figure is
the CPU and wall time of `ingress.check` (hardened parse, header, contract validation, findings report)
until it refuses the message, and the number of findings in the answer.

    .venv/bin/python bench/validation_bench.py                      # 5 MB, budget 2 s (the defaults)
    .venv/bin/python bench/validation_bench.py --bytes 1048576 --budget 0.5 --runs 5

Bodies:
  xml-unexpected   the zuweisung.kontakt.1010 example with unexpected elements, one per line
  xml-one-line     the same on a single line
  json-bad-codes   teilnahme.anwesenheit.2030 with days whose attendance code is unknown
  json-bad-dates   the same with days whose date does not exist
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.endpoints import ingress  # noqa: E402
from hub.canonical import Message  # noqa: E402
from hub.config import Settings  # noqa: E402
from hub.findings import Refusal  # noqa: E402
from hub.runtime import Hub  # noqa: E402
from hub.samples import samples  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def xml_body(hub: Hub, limit: int, one_line: bool) -> bytes:
    data = samples("agency-xml", fresh=True)["zuweisung.kontakt.1010"]
    base = hub.adapter("agency-xml").encode(Message.build(data["header"], data["body"]))
    junk = b'<fk:x a="1"/>' + (b"" if one_line else b"\n")
    return base.replace(b"<fk:antwortBis>", junk * ((limit - len(base) - 16) // len(junk)) + b"<fk:antwortBis>", 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bytes", type=int, default=Settings().max_message_bytes, help="body size (default HUB_MAX_MESSAGE_BYTES)")
    parser.add_argument("--budget", type=float, default=Settings().validation_seconds, help="HUB_VALIDATION_SECONDS")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        hub = Hub(Settings(database_url=f"sqlite:///{tmp}/hub.db", contracts_dir=ROOT / "contracts", max_message_bytes=args.bytes, validation_seconds=args.budget))
        partners = hub.partners
        bodies = {
            "xml-unexpected": (partners["jobcenter-musterstadt"], "application/xml", xml_body(hub, args.bytes, one_line=False)),
            "xml-one-line": (partners["jobcenter-musterstadt"], "application/xml", xml_body(hub, args.bytes, one_line=True)),
            "json-bad-codes": (partners["traeger-bildungswerk"], "application/json", _json(hub, args.bytes, {"date": "2026-11-02", "code": "unknown"})),
            "json-bad-dates": (partners["traeger-bildungswerk"], "application/json", _json(hub, args.bytes, {"date": "2026-11-31", "code": "anwesend_vor_ort"})),
        }
        print(f"{'body':16} {'bytes':>9} {'cpu s (median)':>15} {'wall s (max)':>13} {'findings':>9}  answer")
        for name, (partner, media, body) in bodies.items():
            cpu, wall, answer = [], [], None
            for _ in range(args.runs):
                started, started_cpu = time.perf_counter(), time.process_time()
                try:
                    ingress.check(hub, partner, body, media)
                    answer = None
                except Refusal as refusal:
                    answer = refusal
                cpu.append(time.process_time() - started_cpu)
                wall.append(time.perf_counter() - started)
            shown = f"{answer.status} {answer.kind}: {answer.detail[-60:]}" if answer else "accepted (!)"
            print(f"{name:16} {len(body):>9,} {statistics.median(cpu):>15.2f} {max(wall):>13.2f} {len(answer.findings) if answer else 0:>9}  {shown}")


def _json(hub: Hub, limit: int, day: dict) -> bytes:
    data = samples("provider-json", fresh=True)["teilnahme.anwesenheit.2030"]
    one = json.dumps(day, ensure_ascii=False).encode()
    base = hub.adapter("provider-json").encode(Message.build(data["header"], data["body"]))
    count = max(1, (limit - len(base)) // (len(one) + 8))
    doc = json.loads(base)
    doc["body"]["days"] = [day] * count
    return json.dumps(doc, ensure_ascii=False).encode()


if __name__ == "__main__":
    main()

"""Benchmark: what refusing repeated JSON member names costs the provider JSON parser (not a test; run
by hand). Old and new decoding run back to back on the same text, alternating, so machine noise hits
both alike:

    old  json.loads(text, parse_constant=...)                          (before: the last value won)
    new  json.loads(text, object_pairs_hook=_unique_object, ...)       (hub.adapters.provider_json)
    full parse_json(data): UTF-8 decode, the new json.loads and the depth check, as ingress runs it

    .venv/bin/python bench/json_parse_bench.py                 # typical report and a large one
    .venv/bin/python bench/json_parse_bench.py --runs 50 --bytes 1048576

Bodies:
  report      the bericht.beurteilung.3010 sample (a typical provider report with its PDF attachment)
  attendance  teilnahme.anwesenheit.2030 grown to --bytes with day objects (many small objects:
              the worst case for an object hook)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.adapters import get_adapter  # noqa: E402
from hub.adapters.provider_json import _no_constant, _unique_object, parse_json  # noqa: E402
from hub.canonical import Message  # noqa: E402
from hub.config import Settings  # noqa: E402
from hub.samples import samples  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def report() -> bytes:
    data = samples("provider-json", fresh=True)["bericht.beurteilung.3010"]
    return get_adapter(ROOT / "contracts", "provider-json").encode(Message.build(data["header"], data["body"]))


def attendance(limit: int) -> bytes:
    data = samples("provider-json", fresh=True)["teilnahme.anwesenheit.2030"]
    doc = json.loads(get_adapter(ROOT / "contracts", "provider-json").encode(Message.build(data["header"], data["body"])))
    day = {"date": "2026-11-02", "code": "anwesend_vor_ort"}
    size = len(json.dumps(day)) + 2
    doc["body"]["days"] = [dict(day) for _ in range((limit - len(json.dumps(doc))) // size)]
    return json.dumps(doc).encode()


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bytes", type=int, default=Settings().max_message_bytes, help="size of the large body (default HUB_MAX_MESSAGE_BYTES)")
    parser.add_argument("--runs", type=int, default=0, help="runs per body (default: 2000 for the report, 20 for the large body)")
    args = parser.parse_args()
    print(f"{'body':11} {'bytes':>9} {'objects':>8} {'old ms':>9} {'new ms':>9} {'full ms':>9} {'new/old':>8}")
    for name, data, runs in (("report", report(), args.runs or 2000), ("attendance", attendance(args.bytes), args.runs or 20)):
        text = data.decode("utf-8")
        objects = text.count("{")
        old = lambda: json.loads(text, parse_constant=_no_constant)  # noqa: E731
        new = lambda: json.loads(text, object_pairs_hook=_unique_object, parse_constant=_no_constant)  # noqa: E731
        full = lambda: parse_json(data)  # noqa: E731
        assert old() == new() == full(), "old and new must read the same document"
        times: dict[str, list[float]] = {"old": [], "new": [], "full": []}
        for _ in range(runs):
            for key, fn in (("old", old), ("new", new), ("full", full)):
                times[key].append(timed(fn))
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        print(f"{name:11} {len(data):9} {objects:8} {med['old']:9.3f} {med['new']:9.3f} {med['full']:9.3f} {med['new'] / med['old']:8.2f}")


if __name__ == "__main__":
    main()

"""Train the master person index's Fellegi-Sunter model and write it as data.

The model (m and u probabilities per comparison level, thresholds) is configuration like a code list:
reviewed, versioned, and loaded at run time from contracts/dedup/model.json. It is trained here on
seeded synthetic German records (never on real case data): u from random pairs, m by EM, no labels.
Needs the test extras (Faker). Run: .venv/bin/python tools/train_person_model.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hub.dedup.blocking import INDEX_PASSES
from hub.dedup.linkage import Linker
from hub.dedup.synthetic import german_dedup_set

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "contracts" / "dedup" / "model.json"
#: the same parameters as package data: the batch linker's fallback for inputs too small to train on
PACKAGED = ROOT / "hub" / "dedup" / "default_model.json"


def main() -> None:
    records, _truth = german_dedup_set(20_000, seed=2026)
    linker = Linker().fit(records)
    data = {"trained_on": "hub.dedup.synthetic.german_dedup_set(20000, seed=2026)", **linker.to_dict()}
    # The synthetic records carry no agency ids, so EM cannot learn them; the domain can: a
    # Kundennummer stays with the person across agencies (equal: near-certain evidence), and a
    # different one within the same scheme is strong evidence against (only typing errors explain it).
    ids = data["model"]["levels"]["ids"]
    m = {"missing": 0.0, "equal": 0.995, "different": 0.005}
    u = {"missing": 0.0, "equal": 1e-6, "different": 1 - 1e-6}
    data["model"]["m"]["ids"] = [m[level] for level in ids]
    data["model"]["u"]["ids"] = [u[level] for level in ids]
    data["ids_prior"] = "m/u of the ids concept are set from domain knowledge, not learned (see above)"
    # the model file is the person index's: its blocking passes are the index's (blocking.INDEX_PASSES,
    # which says why); the batch linker uses all of blocking.PASSES whatever the file says
    data["passes"] = list(INDEX_PASSES)
    for path in (OUT, PACKAGED):
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()

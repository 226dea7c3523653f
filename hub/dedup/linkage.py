"""The linker: train once, then deduplicate, link, or match one record at a time.

Typical use::

    linker = Linker().fit(records)              # EM on the data itself, no labels needed
    pairs = linker.dedupe(records)              # batch: one list
    pairs = linker.link(list_a, list_b)         # batch: two lists
    for r in records: linker.add(r)             # incremental index (person_id = record_id)
    linker.match(new_record)                    # -> [Candidate(person_id, weight, decision), ...]

The incremental index is in memory, keyed by the same blocking keys the batch uses
(:meth:`Linker.blocking_keys`). A database-backed index stores those keys in a table
``(key, person_id)``, fetches the candidates' records for a query's keys, and scores them with
:meth:`Linker.score`, which is exactly what :meth:`Linker.match` does in memory.

The linker is composed of one part per concept (hub/dedup/linking): ``training`` (:meth:`Linker.fit`),
``pairs`` (:meth:`Linker.dedupe`, :meth:`Linker.link`), ``incremental`` (the in-memory index) on a
shared ``base``; its settings travel as JSON through :meth:`Linker.to_dict` /
:meth:`Linker.from_dict`, here. The public names of this module are the same as before the split.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from hub.dedup.blocking import KNOWN_PASSES, PASSES
from hub.dedup.fellegi_sunter import MATCH, NON_MATCH, REVIEW, FSModel, Thresholds
from hub.dedup.linking.base import Candidate, LinkPair, Progress, posterior_probability
from hub.dedup.linking.incremental import IncrementalIndex
from hub.dedup.linking.pairs import BatchLinkage
from hub.dedup.linking.training import MIN_TRAINING_RECORDS, default_model

__all__ = [
    "Linker", "Candidate", "LinkPair", "Progress", "MATCH", "REVIEW", "NON_MATCH",
    "MIN_TRAINING_RECORDS", "default_model", "posterior_probability",
]


class Linker(BatchLinkage, IncrementalIndex):
    """Fellegi–Sunter record linkage of German person records with multi-pass blocking.

    Parameters
    ----------
    model:
        trained parameters (from :meth:`fit` or :meth:`FSModel.from_dict`); ``None`` until fitted.
    thresholds:
        decision margins over the prior ``log2 N`` (see :class:`Thresholds`).
    max_block:
        blocks with more records than this are skipped (too unselective to be worth N²).
    workers:
        threads for string similarity in batch runs (rapidfuzz); ``-1`` = all cores.
    """

    def to_dict(self) -> dict[str, object]:
        """Model and settings (not the index) as JSON-ready data."""
        t = self.thresholds
        return {
            "model": self._require_model().to_dict(),
            "thresholds": {
                "match_margin": t.match_margin,
                "link_margin": t.link_margin,
                "review_margin": t.review_margin,
                "closure_margin": t.closure_margin,
                "min_n": t.min_n,
            },
            "max_block": self.max_block,
            "passes": [p.name for p in self.passes],
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> "Linker":
        passes = [KNOWN_PASSES[n] for n in data.get("passes", [p.name for p in PASSES])]
        return cls(
            FSModel.from_dict(data["model"]),
            thresholds=Thresholds(**data.get("thresholds", {})),
            max_block=int(data.get("max_block", 500)),
            passes=passes,
        )

    def explain(self, levels: Sequence[int]) -> dict[str, tuple[str, float]]:
        """Level name and weight per concept for a candidate's ``levels``."""
        return self._require_model().explain(np.asarray(levels))

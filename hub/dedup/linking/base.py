"""What every part of the linker shares: its settings and state, the results it hands out,
and comparing pairs.

Training, batch linkage and the incremental index work on one model, one set of thresholds and
blocking passes, and one vocabulary (so that strings are coded alike wherever they were seen
first); :class:`LinkerBase` holds them, and :class:`hub.dedup.linkage.Linker` composes the parts
on top of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from hub.dedup.blocking import PASSES, BlockingPass
from hub.dedup.compare import compare_pairs
from hub.dedup.fellegi_sunter import FSModel, Thresholds
from hub.dedup.records import RecordTable, Vocabulary

Progress = Callable[[str, int, int], None]
"""Progress callback: (stage, done, total)."""

_CHUNK = 500_000  # pairs compared per step: bounds memory, gives the progress bar its ticks


@dataclass(frozen=True, slots=True)
class Candidate:
    """A person in the index that a queried record may be: best weight over the person's records."""

    person_id: str
    record_id: str
    weight: float
    decision: str  # "match" | "review" | "non_match"
    levels: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class LinkPair:
    """One linked pair of a batch run; ``id_a``/``id_b`` are the callers' record ids."""

    id_a: str
    id_b: str
    weight: float
    decision: str


def _noop(stage: str, done: int, total: int) -> None:
    return None


class LinkerBase:
    """The linker's settings and state; the parameters are described at :class:`hub.dedup.linkage.Linker`."""

    def __init__(
        self,
        model: FSModel | None = None,
        *,
        thresholds: Thresholds | None = None,
        max_block: int = 500,
        passes: Sequence[BlockingPass] = PASSES,
        workers: int = 1,
    ) -> None:
        self.model = model
        self.thresholds = thresholds or Thresholds()
        self.max_block = max_block
        self.passes = tuple(passes)
        self.workers = workers
        self.vocab = Vocabulary()
        # incremental index
        self._index = RecordTable(self.vocab)
        self._row_person: list[str] = []
        self._persons: dict[str, int] = {}
        self._blocks: dict[str, list[int]] = {}

    def _levels(self, ta: RecordTable, ia: np.ndarray, tb: RecordTable, ib: np.ndarray, progress: Progress = _noop, stage: str = "") -> np.ndarray:
        out = np.empty((len(ia), 5), dtype=np.int8)
        for s in range(0, len(ia), _CHUNK):
            out[s : s + _CHUNK] = compare_pairs(ta, ia[s : s + _CHUNK], tb, ib[s : s + _CHUNK], self.workers)
            if stage:
                progress(stage, min(s + _CHUNK, len(ia)), len(ia))
        return out

    def _require_model(self) -> FSModel:
        if self.model is None:
            raise RuntimeError("the linker has no model yet: call fit() or pass a trained FSModel")
        return self.model


def posterior_probability(weight: float, n: int) -> float:
    """P(same person) for a weight in an index of ``n`` persons (prior odds 1 : n)."""
    x = weight - math.log2(max(n, 1))
    return 1.0 / (1.0 + 2.0 ** (-x))

"""The Fellegi–Sunter model: match weights in bits from comparison levels.

Why Fellegi–Sunter: it is the model behind every production person index (the statistical
offices' record linkage, Splink, FEBRL), it needs no labelled training data — which the hub does
not have, and must not create by looking at case files — and every score is explainable: a match
weight is a sum of one term per concept, ``log2(m / u)``, that an auditor can read off ("birth
date exact: +11.8 bits, given name different: -4.2 bits").

* ``u[level]`` = P(level | two *random* records): estimated by comparing random pairs, which are
  non-matches with overwhelming probability. Cheap and unbiased.
* ``m[level]`` = P(level | same person): estimated by EM (expectation maximisation) on the
  blocked candidate pairs, a two-class latent mixture with conditional independence. In the EM
  the non-match class gets its own u (the blocked pairs are *not* random: they agree on their
  blocking key), but only the m it finds is kept.

A pair's weight ``W = Σ log2(m/u)`` is the log2 likelihood ratio. Whether W is enough depends
on how many candidates there are: with N persons in the index, the prior odds that a given
record is a given person are about 1 : N, so the posterior log2-odds are ``W - log2 N``. The
thresholds therefore grow with the index: :meth:`Thresholds.match_at` is ``log2 N + margin``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hub.dedup.compare import CONCEPTS, LEVELS

__all__ = ["FSModel", "Thresholds", "estimate_u", "estimate_m_em", "MATCH", "REVIEW", "NON_MATCH"]

MATCH = "match"
REVIEW = "review"
NON_MATCH = "non_match"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Decision thresholds as margins, in bits, over the prior ``log2 N``.

    ``match_margin`` = posterior log2-odds needed for an automatic link (8 bits ≈ 256 : 1);
    ``review_margin`` = posterior log2-odds above which a pair goes to a person for review.
    ``min_n`` keeps a tiny index from accepting weak evidence just because it is tiny.
    """

    match_margin: float = 8.0
    review_margin: float = -2.0
    min_n: int = 1000

    def prior_bits(self, n: int) -> float:
        return math.log2(max(int(n), self.min_n))

    def match_at(self, n: int) -> float:
        return self.prior_bits(n) + self.match_margin

    def review_at(self, n: int) -> float:
        return self.prior_bits(n) + self.review_margin

    def decide(self, weights: np.ndarray, n: int) -> np.ndarray:
        """Decision per weight: ``"match"``, ``"review"`` or ``"non_match"``."""
        out = np.full(len(weights), NON_MATCH, dtype=object)
        out[weights >= self.review_at(n)] = REVIEW
        out[weights >= self.match_at(n)] = MATCH
        return out


def _counts(levels: np.ndarray, weights: np.ndarray | None = None) -> list[np.ndarray]:
    out = []
    for c, name in enumerate(CONCEPTS):
        out.append(np.bincount(levels[:, c], weights=weights, minlength=len(LEVELS[name])).astype(np.float64))
    return out


def _normalise(counts: np.ndarray, pseudo: float) -> np.ndarray:
    """Probabilities over the non-missing levels 1..K (level 0 stays 0)."""
    p = counts.astype(np.float64).copy()
    p[0] = 0.0
    p[1:] += pseudo
    total = p[1:].sum()
    return p / total if total > 0 else p


def estimate_u(random_levels: np.ndarray, pseudo: float = 0.5) -> dict[str, np.ndarray]:
    """u probabilities from the comparison levels of random pairs."""
    return {name: _normalise(cnt, pseudo) for name, cnt in zip(CONCEPTS, _counts(random_levels))}


def _default_m() -> dict[str, np.ndarray]:
    """A starting point for EM: true matches mostly agree, sometimes a little, rarely not."""
    m = {}
    for name in CONCEPTS:
        k = len(LEVELS[name]) - 1
        start = np.zeros(k + 1)
        start[1] = 0.8
        if k > 1:
            start[2:] = 0.2 * np.linspace(1.0, 0.3, k - 1) / np.linspace(1.0, 0.3, k - 1).sum()
        m[name] = start
    return m


def estimate_m_em(
    levels: np.ndarray,
    u_random: dict[str, np.ndarray],
    *,
    iterations: int = 60,
    tol: float = 1e-6,
    pseudo: float = 0.5,
) -> tuple[dict[str, np.ndarray], float]:
    """EM on candidate pairs; return (m per concept, fraction of pairs that are matches).

    Works on the distinct level patterns with their counts, so a million pairs cost as much as
    the few thousand patterns they contain.
    """
    if len(levels) == 0:
        return _default_m(), 0.0
    patterns, counts = np.unique(levels, axis=0, return_counts=True)
    counts = counts.astype(np.float64)
    m = _default_m()
    u = {k: v.copy() for k, v in u_random.items()}
    lam = 0.1
    prev = -np.inf
    for _ in range(iterations):
        log_m = np.full(len(patterns), math.log(lam))
        log_u = np.full(len(patterns), math.log(1 - lam))
        for c, name in enumerate(CONCEPTS):
            lv = patterns[:, c]
            mm = np.where(lv > 0, np.maximum(m[name][lv], 1e-300), 1.0)
            uu = np.where(lv > 0, np.maximum(u[name][lv], 1e-300), 1.0)
            log_m += np.log(mm)
            log_u += np.log(uu)
        top = np.maximum(log_m, log_u)
        ll_each = top + np.log(np.exp(log_m - top) + np.exp(log_u - top))
        g = np.exp(log_m - ll_each)
        ll = float((counts * ll_each).sum())
        gm = counts * g
        gu = counts * (1 - g)
        lam = min(max(gm.sum() / counts.sum(), 1e-9), 1 - 1e-9)
        cm = _counts(patterns, gm)
        cu = _counts(patterns, gu)
        m = {name: _normalise(x, pseudo) for name, x in zip(CONCEPTS, cm)}
        u = {name: _normalise(x, pseudo) for name, x in zip(CONCEPTS, cu)}
        if abs(ll - prev) < tol * abs(ll):
            break
        prev = ll
    return m, lam


@dataclass
class FSModel:
    """Trained m and u per concept and level; weights in bits.

    Serialisable with :meth:`to_dict` / :meth:`from_dict` so the master person index can store
    the parameters it scored with next to the links it made.
    """

    m: dict[str, np.ndarray]
    u: dict[str, np.ndarray]
    lam: float = 0.0
    max_abs_weight: float = 30.0
    meta: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.m = {k: np.asarray(v, dtype=np.float64) for k, v in self.m.items()}
        self.u = {k: np.asarray(v, dtype=np.float64) for k, v in self.u.items()}
        width = max(len(v) for v in LEVELS.values())
        table = np.zeros((len(CONCEPTS), width))
        for c, name in enumerate(CONCEPTS):
            m, u = self.m[name], self.u[name]
            with np.errstate(divide="ignore", invalid="ignore"):
                w = np.log2(np.maximum(m, 1e-12) / np.maximum(u, 1e-12))
            w[0] = 0.0
            table[c, : len(w)] = np.clip(w, -self.max_abs_weight, self.max_abs_weight)
        self.table = table

    def weights(self, levels: np.ndarray) -> np.ndarray:
        """Match weight in bits of each row of a ``(pairs, concepts)`` level array."""
        if len(levels) == 0:
            return np.zeros(0)
        idx = levels.astype(np.intp)
        return self.table[np.arange(len(CONCEPTS)), idx].sum(axis=1)

    def explain(self, levels_row: np.ndarray) -> dict[str, tuple[str, float]]:
        """Per concept: the level's name and its weight in bits (for review screens and audit)."""
        return {
            name: (LEVELS[name][int(levels_row[c])], round(float(self.table[c, int(levels_row[c])]), 2))
            for c, name in enumerate(CONCEPTS)
        }

    def to_dict(self) -> dict[str, object]:
        return {
            "concepts": list(CONCEPTS),
            "levels": {k: list(v) for k, v in LEVELS.items()},
            "m": {k: v.tolist() for k, v in self.m.items()},
            "u": {k: v.tolist() for k, v in self.u.items()},
            "lam": self.lam,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> "FSModel":
        if list(data["concepts"]) != list(CONCEPTS) or data.get("levels") != {k: list(v) for k, v in LEVELS.items()}:
            raise ValueError("model was trained with other comparison levels; retrain it")
        return cls(m=data["m"], u=data["u"], lam=float(data.get("lam", 0.0)), meta=dict(data.get("meta", {})))

"""The Fellegi–Sunter model: match weights in bits from comparison levels.

Why Fellegi–Sunter: it is the model behind every production person index (the statistical
offices' record linkage, Splink, FEBRL), it needs no labelled training data — which the hub does
not have, and must not create by looking at case files — and every score is explainable: a match
weight is a sum of one term per concept, ``log2(m / u)``, that an auditor can read off ("birth
date exact: +11.8 bits, given name different: -4.2 bits").

* ``u[level]`` = P(level | two *random* records): estimated by comparing random pairs, which are
  non-matches with overwhelming probability. Cheap and unbiased.
* ``m[level]`` = P(level | same person): estimated by EM (expectation maximisation) on
  blocked candidate pairs, a latent mixture of matches, household members and other pairs with
  conditional independence within each class. The non-match classes get their own parameters
  (blocked pairs are *not* random: they agree on their blocking key); only the matches' m is
  kept. Which blocked pairs each concept is learned from: :meth:`Linker._em_by_passes`.
* households: see :attr:`FSModel.household_bits`.

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

    ``match_margin`` = posterior log2-odds needed for an automatic link (0 = even odds under
    the model; the model's independence assumption overstates evidence, so the measured
    precision, not the nominal odds, is what docs/dedup.md reports);
    ``link_margin`` = the same for linking two lists one-to-one, where a record can be linked to
    at most one record of the other list: that constraint already removes the competing
    candidates the margin guards against, so less is needed;
    ``review_margin`` = posterior log2-odds above which a pair goes to a person for review;
    ``closure_margin`` = what a pair inferred by transitivity (A=B, B=C, so A=C) needs itself.
    ``min_n`` keeps a tiny index from accepting weak evidence just because it is tiny.
    """

    match_margin: float = 2.0
    link_margin: float = -3.0
    review_margin: float = -9.0
    closure_margin: float = -2.0
    min_n: int = 1000

    def prior_bits(self, n: int) -> float:
        return math.log2(max(int(n), self.min_n))

    def match_at(self, n: int) -> float:
        return self.prior_bits(n) + self.match_margin

    def review_at(self, n: int) -> float:
        return self.prior_bits(n) + self.review_margin

    def link_at(self, n: int) -> float:
        return self.prior_bits(n) + self.link_margin

    def decide(self, weights: np.ndarray, n: int, *, one_to_one: bool = False) -> np.ndarray:
        """Decision per weight: ``"match"``, ``"review"`` or ``"non_match"``."""
        out = np.full(len(weights), NON_MATCH, dtype=object)
        out[weights >= min(self.review_at(n), self.link_at(n) if one_to_one else np.inf)] = REVIEW
        out[weights >= (self.link_at(n) if one_to_one else self.match_at(n))] = MATCH
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


def _household_start(u_random: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A starting point for the household class: same family name and address, everything
    personal (given name, birth date, ids) as unrelated as between random people."""
    h = {k: v.copy() for k, v in u_random.items()}
    for name in ("family_name", "address"):
        k = len(LEVELS[name]) - 1
        start = np.zeros(k + 1)
        start[1] = 0.9
        start[2:] = 0.1 / (k - 1)
        h[name] = start
    return h


def estimate_m_em(
    levels: np.ndarray,
    u_random: dict[str, np.ndarray],
    *,
    iterations: int = 100,
    tol: float = 1e-7,
    pseudo: float = 0.5,
) -> tuple[dict[str, np.ndarray], float]:
    """EM on candidate pairs; return (m per concept, fraction of pairs that are matches).

    The mixture has THREE latent classes, not the textbook two: matches, household members
    (same family name and address, their own given name and birth date) and other non-matches.
    Blocked pairs in social-services data are full of household members (the
    *Bedarfsgemeinschaft* is the unit of SGB II); with two classes, EM takes them for the
    matches, because they agree on the two strongest concepts. Only the match class's m is kept.

    Works on the distinct level patterns with their counts, so a million pairs cost as much as
    the few thousand patterns they contain.
    """
    if len(levels) == 0:
        return _default_m(), 0.0
    patterns, counts = np.unique(levels, axis=0, return_counts=True)
    counts = counts.astype(np.float64)
    params = [_default_m(), _household_start(u_random), {k: v.copy() for k, v in u_random.items()}]
    share = np.array([0.1, 0.1, 0.8])
    prev = -np.inf
    for _ in range(iterations):
        log_p = np.log(np.maximum(share, 1e-300))[:, None] + np.zeros((len(params), len(patterns)))
        for j, prm in enumerate(params):
            for c, name in enumerate(CONCEPTS):
                lv = patterns[:, c]
                log_p[j] += np.log(np.where(lv > 0, np.maximum(prm[name][lv], 1e-300), 1.0))
        top = log_p.max(axis=0)
        ll_each = top + np.log(np.exp(log_p - top).sum(axis=0))
        resp = np.exp(log_p - ll_each) * counts
        ll = float((counts * ll_each).sum())
        share = np.clip(resp.sum(axis=1) / counts.sum(), 1e-9, 1.0)
        params = [
            {name: _normalise(x, pseudo) for name, x in zip(CONCEPTS, _counts(patterns, resp[j]))} for j in range(len(params))
        ]
        if abs(ll - prev) < tol * abs(ll):
            break
        prev = ll
    return params[0], float(share[0])


@dataclass
class FSModel:
    """Trained m and u per concept and level; weights in bits.

    Serialisable with :meth:`to_dict` / :meth:`from_dict` so the master person index can store
    the parameters it scored with next to the links it made.
    """

    m: dict[str, np.ndarray]
    u: dict[str, np.ndarray]
    lam: float = 0.0
    household_rate: float = 0.0
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
        # Household correction. Fellegi-Sunter multiplies u of family name and address as if
        # they were independent among non-matches; in SGB II data they are not: the members of
        # a Bedarfsgemeinschaft (the household, the unit of SGB II) share both. Among non-matches P(same family name AND same
        # address) is u_f*u_a + h, h = share of pairs that are household members; the weight of
        # a pair that agrees on both is lowered by log2(1 + h / (u_f*u_a)).
        # "agrees" = family name exact, shared part or one typo; address in the same building or street
        uf = float(self.u["family_name"][1:4].sum())
        ua = float(self.u["address"][1:5].sum())
        self.household_bits = math.log2(1.0 + self.household_rate / max(uf * ua, 1e-300)) if self.household_rate > 0 else 0.0
        self._fam = CONCEPTS.index("family_name")
        self._addr = CONCEPTS.index("address")

    def weights(self, levels: np.ndarray) -> np.ndarray:
        """Match weight in bits of each row of a ``(pairs, concepts)`` level array."""
        if len(levels) == 0:
            return np.zeros(0)
        idx = levels.astype(np.intp)
        w = self.table[np.arange(len(CONCEPTS)), idx].sum(axis=1)
        if self.household_bits:
            f, a = levels[:, self._fam], levels[:, self._addr]
            w -= self.household_bits * ((f >= 1) & (f <= 3) & (a >= 1) & (a <= 4))
        return w

    def explain(self, levels_row: np.ndarray) -> dict[str, tuple[str, float]]:
        """Per concept: the level's name and its weight in bits (for review screens and audit);
        ``household`` is the correction for agreeing on family name and address together."""
        out = {
            name: (LEVELS[name][int(levels_row[c])], round(float(self.table[c, int(levels_row[c])]), 2))
            for c, name in enumerate(CONCEPTS)
        }
        f, a = int(levels_row[self._fam]), int(levels_row[self._addr])
        hb = -self.household_bits if (1 <= f <= 3 and 1 <= a <= 4) else 0.0
        out["household"] = ("same family name and address" if hb else "-", round(hb, 2))
        return out

    def to_dict(self) -> dict[str, object]:
        return {
            "concepts": list(CONCEPTS),
            "levels": {k: list(v) for k, v in LEVELS.items()},
            "m": {k: v.tolist() for k, v in self.m.items()},
            "u": {k: v.tolist() for k, v in self.u.items()},
            "lam": self.lam,
            "household_rate": self.household_rate,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> "FSModel":
        if list(data["concepts"]) != list(CONCEPTS) or data.get("levels") != {k: list(v) for k, v in LEVELS.items()}:
            raise ValueError("model was trained with other comparison levels; retrain it")
        return cls(
            m=data["m"],
            u=data["u"],
            lam=float(data.get("lam", 0.0)),
            household_rate=float(data.get("household_rate", 0.0)),
            meta=dict(data.get("meta", {})),
        )

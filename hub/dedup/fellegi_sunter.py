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


def _household_constrain(h: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Keep the household class what it is meant to be: two people at one address. Their given
    names never agree exactly, their birth dates not even nearly, their addresses do. Left free,
    the class drifts to "same family name" and swallows true matches with a mistyped birth
    date (they too agree on everything but one field)."""
    h = {k: v.copy() for k, v in h.items()}
    for name, agree in (("given_name", slice(1, 3)), ("birth_date", slice(1, 4)), ("address", slice(5, None))):
        h[name][agree] = 1e-6
        h[name][1:] /= h[name][1:].sum()
    return h


def estimate_m_em(
    levels: np.ndarray,
    u_random: dict[str, np.ndarray],
    *,
    iterations: int = 100,
    tol: float = 1e-7,
    pseudo: float = 0.5,
    households: bool = True,
) -> tuple[dict[str, np.ndarray], float]:
    """EM on candidate pairs; return (m per concept, fraction of pairs that are matches).

    With ``households`` the mixture has THREE latent classes, not the textbook two: matches,
    household members (same address, their own given name and birth date; constrained to
    that, see :func:`_household_constrain`) and other non-matches. Blocked pairs in
    social-services data are full of household members (the *Bedarfsgemeinschaft* is the unit
    of SGB II); with two classes, EM takes them for the matches, because they agree on the two
    strongest concepts. Without ``households``: two classes, for pairs that cannot be relatives
    (they share a birth date). Only the match class's m is kept.

    Works on the distinct level patterns with their counts, so a million pairs cost as much as
    the few thousand patterns they contain.
    """
    if len(levels) == 0:
        return _default_m(), 0.0
    patterns, counts = np.unique(levels, axis=0, return_counts=True)
    counts = counts.astype(np.float64)
    params = [_default_m(), _household_start(u_random), {k: v.copy() for k, v in u_random.items()}]
    share = np.array([0.1, 0.1, 0.8])
    params[1] = _household_constrain(params[1])
    if not households:
        params, share = [params[0], params[2]], np.array([0.1, 0.9])
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
        if households:
            params[1] = _household_constrain(params[1])
        if abs(ll - prev) < tol * abs(ll):
            break
        prev = ll
    return params[0], float(share[0])


@dataclass
class FSModel:
    """Trained m and u per concept and level; weights in bits.

    Serialisable with :meth:`to_dict` / :meth:`from_dict` so the master person index can store
    the parameters it scored with next to the links it made.

    ``household_rates[g, d]`` = share of all pairs within one list that are two members of one
    household (same family name, street and house number) whose given names compare at level
    ``g`` and birth dates at level ``d`` (see :meth:`weights`). A scalar ``household_rate``
    (models trained before the levels were told apart) counts as "both different".
    """

    m: dict[str, np.ndarray]
    u: dict[str, np.ndarray]
    lam: float = 0.0
    household_rate: float = 0.0
    max_abs_weight: float = 30.0
    meta: dict[str, object] = field(default_factory=dict)
    household_rates: np.ndarray | None = None

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
        ng, nd = len(LEVELS["given_name"]), len(LEVELS["birth_date"])
        if self.household_rates is None:
            rates = np.zeros((ng, nd))
            rates[-1, -1] = self.household_rate
        else:
            rates = np.asarray(self.household_rates, dtype=np.float64).reshape(ng, nd).copy()
        self.household_rates = rates
        self.household_rate = float(rates.sum())
        self._given = CONCEPTS.index("given_name")
        self._dob = CONCEPTS.index("birth_date")
        self._fam = CONCEPTS.index("family_name")
        self._addr = CONCEPTS.index("address")
        # Household correction. Fellegi-Sunter multiplies the u of the concepts as if they were
        # independent among non-matches. In SGB II data they are not: the members of a
        # Bedarfsgemeinschaft (the household, the unit of SGB II) share family name and address,
        # and the other list has them under the same (or a mistyped) family name and address.
        # So among non-matches, P(f, a, g, d) = u_f u_a u_g u_d + h[g, d] m_f m_a: the family
        # name and address of two relatives compare like those of one person (m), their given
        # names and birth dates as measured between relatives (h[g, d], the share of all pairs of
        # one list that are relatives with levels g and d). The weight log2(m/u) therefore loses
        #     log2(1 + h[g, d] * 2**(w_f + w_a) / (u_g u_d))
        # bits: much where family name and address agree and given name and birth date differ as
        # relatives' do, nothing where the data has no relatives who compare like that (two
        # members of one household rarely share a given name). Missing levels have u = 1.
        ug = np.where(np.arange(ng) == 0, 1.0, np.maximum(self.u["given_name"], 1e-12))
        ud = np.where(np.arange(nd) == 0, 1.0, np.maximum(self.u["birth_date"], 1e-12))
        gd = rates / np.outer(ug, ud)  # (given level, dob level)
        fa = 2.0 ** (table[self._fam, : len(LEVELS["family_name"])][:, None] + table[self._addr, : len(LEVELS["address"])][None, :])
        # The u of family name and address come from random pairs, and random pairs include the
        # relatives the household term adds: u = (1 - H) u' + H m, H = share of relatives among
        # all pairs (sum of rates over the levels where both have a value). Counting them twice
        # would say that two strangers share an address as often as random pairs do, most of
        # which, in a list full of households, are relatives. So the other non-matches get
        # u' = (u - H m) / (1 - H): P(f, a, g, d | non-match) = (1 - H) u'_f u'_a u_g u_d
        # + h[g, d] m_f m_a. u' is a difference of two estimates; it is not taken below two
        # standard errors of the random-pair estimate of u (nor above u): where the data
        # cannot tell strangers' agreement from none, it stays at what the sample resolves.
        big_h = float(rates[1:, 1:].sum())
        n_random = float(self.meta.get("random_pairs", 0) or 0)
        self.stranger_ratio = {name: np.ones(len(LEVELS[name])) for name in ("family_name", "address")}
        if big_h > 0 and n_random > 0:
            for name in self.stranger_ratio:
                u, m = self.u[name], self.m[name]
                floor = np.minimum(u, 2.0 * np.sqrt(u * (1.0 - u) / n_random))
                r = np.ones(len(u))
                ok = u[1:] > 0
                r[1:][ok] = np.maximum((u[1:][ok] - big_h * m[1:][ok]) / (1.0 - big_h), floor[1:][ok]) / u[1:][ok]
                self.stranger_ratio[name] = np.minimum(r, 1.0)
        strangers = (1.0 - big_h) * np.outer(self.stranger_ratio["family_name"], self.stranger_ratio["address"])
        # household_table[f, a, g, d] in bits
        self.household_table = np.log2(strangers[:, :, None, None] + fa[:, :, None, None] * gd[None, None, :, :])
        self.household_bits = float(self.household_table[1, 1, -1, -1])  # exact family name and address, both personal fields different

    def _household(self, idx: np.ndarray) -> np.ndarray:
        return self.household_table[idx[:, self._fam], idx[:, self._addr], idx[:, self._given], idx[:, self._dob]]

    def weights(self, levels: np.ndarray) -> np.ndarray:
        """Match weight in bits of each row of a ``(pairs, concepts)`` level array."""
        if len(levels) == 0:
            return np.zeros(0)
        idx = levels.astype(np.intp)
        w = self.table[np.arange(len(CONCEPTS)), idx].sum(axis=1)
        if self.household_rate > 0:
            w -= self._household(idx)
        return w

    def explain(self, levels_row: np.ndarray) -> dict[str, tuple[str, float]]:
        """Per concept: the level's name and its weight in bits (for review screens and audit);
        ``household`` is the correction for agreeing on family name and address together."""
        out = {
            name: (LEVELS[name][int(levels_row[c])], round(float(self.table[c, int(levels_row[c])]), 2))
            for c, name in enumerate(CONCEPTS)
        }
        hb = -float(self._household(np.asarray(levels_row, dtype=np.intp).reshape(1, -1))[0])
        if hb <= -0.005:
            label = "could be relatives: same family name and address"
        elif hb >= 0.005:
            label = "not relatives, and strangers rarely agree on family name or address like this"
        else:
            label = "-"
        out["household"] = (label, round(hb, 2))
        return out

    def to_dict(self) -> dict[str, object]:
        return {
            "concepts": list(CONCEPTS),
            "levels": {k: list(v) for k, v in LEVELS.items()},
            "m": {k: v.tolist() for k, v in self.m.items()},
            "u": {k: v.tolist() for k, v in self.u.items()},
            "lam": self.lam,
            "household_rate": self.household_rate,
            "household_rates": self.household_rates.tolist(),
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
            household_rates=data.get("household_rates"),
            meta=dict(data.get("meta", {})),
        )

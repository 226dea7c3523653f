"""Training the linker: Fellegi-Sunter parameters from the data itself, without labels.

u comes from random pairs, m from EM on blocked pairs (each concept learnt from pairs whose
blocking key does not involve it), and the household rates from the pairs that live at one
address, so that relatives are not taken for duplicates. Inputs too small to train on get the
packaged default model instead.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Self, Sequence

import numpy as np

from hub.dedup.blocking import dedupe_pairs, link_pairs
from hub.dedup.compare import CONCEPTS, LEVELS
from hub.dedup.fellegi_sunter import FSModel, estimate_m_em, estimate_u
from hub.dedup.linking.base import LinkerBase, Progress, _noop
from hub.dedup.records import PersonRecord, RecordTable

MIN_TRAINING_RECORDS = 500
#: pseudo-pairs of the prior (random people's levels) in a household's given-name/birth-date distribution
_RELATIVES_PRIOR = 50.0


class Training(LinkerBase):
    """:meth:`fit`: the linker's model from the records it is to link."""

    def fit(
        self,
        records: Sequence[PersonRecord],
        other: Sequence[PersonRecord] | None = None,
        *,
        n_random: int = 1_000_000,
        max_em_pairs: int = 2_000_000,
        seed: int = 0,
        progress: Progress = _noop,
    ) -> Self:
        """Estimate u from random pairs and m by EM on the blocked pairs of ``records`` (and
        ``other`` for linkage). Returns ``self``."""
        ta = RecordTable(self.vocab, records)
        tb = RecordTable(self.vocab, other) if other is not None else ta
        return self._fit_tables(ta, tb, other is None, n_random=n_random, max_em_pairs=max_em_pairs, seed=seed, progress=progress)

    def _fit_tables(
        self,
        ta: RecordTable,
        tb: RecordTable,
        same: bool,
        *,
        n_random: int,
        max_em_pairs: int,
        seed: int,
        progress: Progress,
        candidates: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> Self:
        """``candidates`` = (ia, ib, levels) of the blocked pairs when the caller has them
        already (dedupe): they are not blocked and compared a second time."""
        if len(ta) < 2 or len(tb) < 1:
            raise ValueError("training needs at least two records")
        if min(len(ta), len(tb)) < MIN_TRAINING_RECORDS:
            # too few random pairs for u and too few matches for EM: use the parameters
            # learned from the seeded German synthetic registers instead
            self.model = default_model()
            return self
        rng = np.random.default_rng(seed)
        n_random = int(min(n_random, len(ta) * len(tb)))
        ri = rng.integers(0, len(ta), n_random)
        rj = rng.integers(0, len(tb), n_random)
        if same:
            keep = ri != rj
            ri, rj = ri[keep], rj[keep]
        progress("train: random pairs", 0, 2)
        u = estimate_u(self._levels(ta, ri, tb, rj))
        progress("train: EM", 1, 2)
        m = self._em_by_passes(ta, tb, same, u, max_em_pairs, rng)
        lam = 0.0
        if same:
            # a list with duplicates: duplicates whose given name and birth date were both
            # mistyped look like households; estimate h on one record per found person
            m0 = FSModel(m=m, u=u)
            if candidates is None:
                ia, ib = dedupe_pairs(ta, self.max_block, self.passes)
                lv = self._levels(ta, ia, ta, ib)
            else:
                ia, ib, lv = candidates
            w = m0.weights(lv)
            keep = _representatives(len(ta), ia, ib, w >= self.thresholds.match_at(len(ta)))
            h = self._household_rates(ta, u, keep)
        else:
            h = (self._household_rates(ta, u) + self._household_rates(tb, u)) / 2
        self.model = FSModel(
            m=m, u=u, lam=lam, household_rates=h, meta={"n_a": len(ta), "n_b": len(tb), "random_pairs": int(len(ri)), "seed": seed}
        )
        progress("train: EM", 2, 2)
        return self

    def _em_by_passes(
        self, ta: RecordTable, tb: RecordTable, same: bool, u: dict[str, np.ndarray], max_pairs: int, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """m by EM, each concept learned from blocked pairs whose blocking key does not involve it.

        Pairs found by a key agree on that key's fields by construction, so those fields tell
        EM nothing about matches; worse, in data full of households and common names the
        pairs that agree on family name and address, or on given and family name, form
        clusters of their own that a mixture model takes for the matches. So (as Splink does):

        * given name, family name, address, ids are learned from the pairs that share the
          birth date and an initial (passes ``gd``, ``fd``), with birth date hidden.
          Two classes: relatives rarely share a birth date, and a household class here would
          take the true matches whose given name was replaced (family name and address agree,
          given name differs, and the birth date that would tell them apart is hidden);
        * birth date is learned from the pairs that share the sound of given and family name
          (pass ``gf``), with a (constrained) household class: in a list full of relatives,
          two of them with similar-sounding given names share family name and address.
        """
        sessions = (
            ({"gd", "fd"}, ("given_name", "family_name", "address", "ids"), ("given_name", "family_name", "address", "ids"), False),
            ({"gf"}, ("given_name", "family_name", "birth_date", "address", "ids"), ("birth_date",), True),
        )
        m = {name: v.copy() for name, v in u.items()}
        for pass_names, see, learn, households in sessions:
            passes = [p for p in self.passes if p.name in pass_names]
            if not passes:
                continue
            ia, ib = dedupe_pairs(ta, self.max_block, passes) if same else link_pairs(ta, tb, self.max_block, passes)
            if len(ia) > max_pairs:
                pick = rng.choice(len(ia), max_pairs, replace=False)
                ia, ib = ia[pick], ib[pick]
            lv = self._levels(ta, ia, tb, ib)
            for c, name in enumerate(CONCEPTS):
                if name not in see:
                    lv[:, c] = 0  # hidden: "cannot compare" contributes nothing to EM
            est, _ = estimate_m_em(lv, u, households=households)
            for name in learn:
                m[name] = est[name]
        return m

    def _household_rates(self, t: RecordTable, u: dict[str, np.ndarray], rows: np.ndarray | None = None) -> np.ndarray:
        """How often two records of one list (or of its ``rows``) are two members of one
        household whose given names compare at level ``g`` and birth dates at level ``d``: the
        share of all pairs, as an array ``[g, d]``.

        Household members = same family name, street and house number, and not one person
        entered twice (given name and birth date both agreeing) nor two records that say nothing
        (both missing). Given name and birth date are taken as independent among relatives; each
        one's distribution over levels is measured on them, smoothed towards how random people
        compare (``u``, without the agreeing levels) so that a level seen rarely in a small list
        does not count as impossible."""
        ng, nd = len(LEVELS["given_name"]), len(LEVELS["birth_date"])
        out = np.zeros((ng, nd))
        rows = np.arange(len(t)) if rows is None else rows
        n = len(rows)
        if n < 2:
            return out
        ok = (t.family_code[rows] >= 0) & (t.street_code[rows] >= 0) & (t.house_code[rows] >= 0)
        rows = rows[ok]
        if len(rows) < 2:
            return out
        key = t.family_code[rows].astype(np.int64) * 2**21 + t.street_code[rows] % 2**21
        key = key * 2**21 + t.house_code[rows] % 2**21
        order = np.argsort(key, kind="stable")
        k, r = key[order], rows[order]
        ia_l: list[np.ndarray] = []
        ib_l: list[np.ndarray] = []
        alive = np.arange(len(k) - 1)
        lag = 1
        while len(alive) and lag <= self.max_block:
            alive = alive[alive + lag < len(k)]
            alive = alive[k[alive] == k[alive + lag]]
            ia_l.append(r[alive])
            ib_l.append(r[alive + lag])
            lag += 1
        if not ia_l or not sum(len(x) for x in ia_l):
            return out
        ia, ib = np.concatenate(ia_l), np.concatenate(ib_l)
        lv = self._levels(t, ia, t, ib)
        g, d = lv[:, CONCEPTS.index("given_name")], lv[:, CONCEPTS.index("birth_date")]
        relatives = ~((g == 0) & (d == 0)) & ~((g <= 2) & (g >= 1) & (d == 1))
        g, d = g[relatives], d[relatives]
        if not len(g):
            return out

        def marginal(levels: np.ndarray, width: int, u_c: np.ndarray, agree: int) -> np.ndarray:
            # over the levels where both have a value; "missing" is as likely as between random
            # people, so its entry is 1 (the model divides by u = 1 there too)
            prior = u_c.astype(np.float64).copy()
            prior[: agree + 1] = 0.0  # relatives are two people: no prior mass on agreeing
            prior /= max(prior.sum(), 1e-300)
            counts = np.bincount(levels, minlength=width).astype(np.float64)
            counts[0] = 0.0
            out = (counts + _RELATIVES_PRIOR * prior) / (counts.sum() + _RELATIVES_PRIOR)
            out[0] = 1.0
            return out

        pg = marginal(g, ng, u["given_name"], 2)
        pd_ = marginal(d, nd, u["birth_date"], 1)
        return (len(g) / (n * (n - 1) / 2)) * np.outer(pg, pd_)


@lru_cache(maxsize=1)
def default_model() -> FSModel:
    """Parameters for inputs too small to train on, shipped as package data (default_model.json).

    They were learned from seeded synthetic German registers by tools/train_person_model.py, which
    needs the test extras (Faker); a plain install only reads the file.
    """
    import json
    from pathlib import Path

    data = json.loads((Path(__file__).parents[1] / "default_model.json").read_text(encoding="utf-8"))
    return FSModel.from_dict(data["model"])


def _representatives(n: int, ia: np.ndarray, ib: np.ndarray, linked: np.ndarray) -> np.ndarray:
    """One row per connected component of the ``linked`` pairs (all rows if none are linked)."""
    parent = np.arange(n)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(ia[linked], ib[linked]):
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.asarray([x for x in range(n) if find(x) == x], dtype=np.int64)

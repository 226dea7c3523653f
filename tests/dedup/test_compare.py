"""Comparison levels per concept."""

import numpy as np

from hub.dedup.compare import CONCEPTS, LEVELS, compare_pairs
from hub.dedup.records import PersonRecord, RecordTable, Vocabulary


def level(a: PersonRecord, b: PersonRecord, concept: str) -> str:
    v = Vocabulary()
    out = compare_pairs(RecordTable(v, [a]), [0], RecordTable(v, [b]), [0])
    return LEVELS[concept][out[0, CONCEPTS.index(concept)]]


def P(**kw) -> PersonRecord:
    return PersonRecord(record_id=kw.pop("record_id", "x"), **kw)


def test_family_name_levels():
    assert level(P(family_name="Müller"), P(family_name="Mueller"), "family_name") == "exact", "umlaut spellings are exact"
    assert level(P(family_name="Müller-Lüdenscheidt"), P(family_name="Lüdenscheidt"), "family_name") == "token", "one part of a double name"
    assert level(P(family_name="Schmidt", birth_name="Müller"), P(family_name="Müller"), "family_name") == "token", "birth name equals the other's family name (marriage)"
    assert level(P(family_name="Schneider"), P(family_name="Schnieder"), "family_name") == "fuzzy_high", "one transposition"
    assert level(P(family_name="Schneider"), P(family_name="Bauer"), "family_name") == "different"
    assert level(P(family_name="Schneider"), P(family_name=None), "family_name") == "missing", "missing compares as missing"


def test_given_name_levels():
    assert level(P(given_name="Anna-Lena"), P(given_name="Anna Lena"), "given_name") == "exact", "hyphen or space"
    assert level(P(given_name="Anna Maria"), P(given_name="Maria"), "given_name") == "token", "only one of two given names"
    assert level(P(given_name="Jürgen"), P(given_name="Jurgen"), "given_name") == "exact"
    assert level(P(given_name="Katharina"), P(given_name="Katarina"), "given_name") == "fuzzy_high"


def test_swapped_given_and_family_name_compare_crossed():
    a = P(given_name="Ryan", family_name="Clarke")
    b = P(given_name="Clarke", family_name="Ryan")
    assert (level(a, b, "given_name"), level(a, b, "family_name")) == ("exact", "exact"), "fields typed into each other"


def test_birth_date_levels():
    assert level(P(birth_date="07.03.1980"), P(birth_date="1980-03-07"), "birth_date") == "exact", "notation does not matter"
    assert level(P(birth_date="07.03.1980"), P(birth_date="03.07.1980"), "birth_date") == "day_month_swapped"
    assert level(P(birth_date="07.03.1980"), P(birth_date="07.03.1981"), "birth_date") == "one_digit"
    assert level(P(birth_date="12.03.1980"), P(birth_date="21.03.1980"), "birth_date") == "one_digit", "adjacent transposition counts as one typo"
    assert level(P(birth_date="1980-03-07"), P(birth_date="1980-03-70"), "birth_date") == "missing", "day 70 is no date at all"
    assert level(P(birth_date="1980-03-07"), P(birth_date="1980-03-16"), "birth_date") == "different", "two unrelated wrong digits"
    assert level(P(birth_date="1980-03-07"), P(birth_date="1955-11-23"), "birth_date") == "different"


def test_address_is_one_concept():
    home = dict(street="Hauptstraße", house_number="5", postcode="01067", city="Dresden")
    assert level(P(**home), P(street="Hauptstr. 5", postcode="1067", city="Dresden"), "address") == "exact", "one address, two notations"
    assert level(P(**home), P(**{**home, "postcode": "01069"}), "address") == "street_house", "same building, postcode mistyped"
    assert level(P(**home), P(**{**home, "house_number": "7"}), "address") == "street", "same street, other house"
    assert level(P(**home), P(**{**home, "street": "Bahnhofstraße"}), "address") == "house_area"
    assert level(P(**home), P(street="Ring", house_number="1", postcode="01067", city="Dresden"), "address") == "area"
    assert level(P(**home), P(street="Ring", house_number="1", postcode="80331", city="München"), "address") == "different"


def test_ids_are_compared_only_within_their_scheme():
    a = P(ids={"kundennummer": "123A456789"})
    assert level(a, P(ids={"kundennummer": "123A456789"}), "ids") == "equal"
    assert level(a, P(ids={"kundennummer": "999A999999"}), "ids") == "different"
    assert level(a, P(ids={"provider_x": "123A456789"}), "ids") == "missing", "equal values of different schemes say nothing"


def test_vectorised_comparison_equals_pair_by_pair():
    from hub.dedup.synthetic import german_link_set

    a, b, _ = german_link_set(300, seed=3)
    v = Vocabulary()
    ta, tb = RecordTable(v, a), RecordTable(v, b)
    rng = np.random.default_rng(0)
    ia, ib = rng.integers(0, len(a), 500), rng.integers(0, len(b), 500)
    batch = compare_pairs(ta, ia, tb, ib)
    for k in range(0, 500, 25):
        single = compare_pairs(RecordTable(v, [a[ia[k]]]), [0], RecordTable(v, [b[ib[k]]]), [0])[0]
        assert (batch[k] == single).all(), f"pair {k}: vectorised levels {batch[k]} differ from single {single}"

"""The Linker's API as the master person index will use it."""

import json

import pytest

from hub.dedup.linkage import Linker
from hub.dedup.records import PersonRecord
from hub.dedup.synthetic import GermanPopulation, corrupt, german_link_set


@pytest.fixture(scope="module")
def trained() -> Linker:
    a, b, _ = german_link_set(3000, seed=5)
    return Linker().fit(a, b)


def test_blocking_keys_are_plain_strings_a_database_can_store(trained):
    r = PersonRecord("r1", given_name="Jürgen", family_name="Müller", birth_date="01.02.1980", postcode="1067",
                     street="Hauptstr. 5", city="Dresden", ids={"kundennummer": "123A456"})
    keys = trained.blocking_keys(r)
    assert keys and all(isinstance(k, str) and ":" in k for k in keys), f"keys must be 'pass:value' strings: {keys}"
    assert "fy:657|1980" in keys, "family-name sound + birth year must be a key"
    assert "ix:kundennummer=123A456" in keys, "an identifier is a key within its scheme"
    assert any(k.startswith("ah:") for k in keys), f"street + house number must be a key even for a fresh linker: {keys}"
    same = PersonRecord("r2", given_name="Juergen", family_name="Mueller", birth_date="1980-02-01", postcode="01067",
                        street="Hauptstraße", house_number="5", city="Dresden", ids={"kundennummer": "123A456"})
    assert set(trained.blocking_keys(same)) == set(keys), "two spellings of one record must produce the same keys"


def test_incremental_index_finds_the_person_and_not_a_stranger(trained):
    pop = GermanPopulation(seed=9)
    persons = pop.persons(2000)
    linker = Linker(trained.model)
    linker.add_many(persons, [f"P{i}" for i in range(len(persons))])
    assert linker.index_size == 2000
    import random

    r = random.Random(1)
    hits = 0
    for i in range(0, 2000, 40):
        found = linker.match(corrupt(persons[i], r, "q", pop))
        hits += bool(found) and found[0].person_id == f"P{i}" and found[0].decision == "match"
    assert hits >= 48, f"a corrupted copy must match its person: {hits}/50"
    stranger = pop.person()
    assert not [c for c in linker.match(stranger) if c.decision == "match"], "a new person must not be linked to anyone"


def test_several_records_of_one_person_give_one_candidate(trained):
    linker = Linker(trained.model)
    a = PersonRecord("a1", given_name="Anna", family_name="Schmidt", birth_name="Müller", birth_date="1985-05-05",
                     street="Lindenweg", house_number="3", postcode="04109", city="Leipzig")
    b = PersonRecord("a2", given_name="Anna", family_name="Müller", birth_date="05.05.1985", street="Lindenweg 3",
                     postcode="4109", city="Leipzig")
    linker.add(a, person_id="P1")
    linker.add(b, person_id="P1")
    found = linker.match(PersonRecord("q", given_name="Anna", family_name="Mueller", birth_date="1985-05-05", postcode="04109"))
    assert [c.person_id for c in found] == ["P1"], f"one person, one candidate: {found}"
    assert found[0].decision == "match", f"maiden name + birth date + postcode is enough here: {found[0]}"
    explained = linker.explain(found[0].levels)
    assert set(explained) >= {"given_name", "family_name", "birth_date", "address", "ids", "household"}, explained


def test_score_against_candidates_fetched_elsewhere_equals_match(trained):
    a = PersonRecord("a1", given_name="Jürgen", family_name="Müller", birth_date="1970-01-02", postcode="10115", city="Berlin")
    q = PersonRecord("q", given_name="Juergen", family_name="Muller", birth_date="02.01.1970", postcode="10115", city="Berlin")
    linker = Linker(trained.model)
    linker.add(a, "P1")
    in_memory = linker.match(q)
    fetched = linker.score(q, [a], ["P1"], index_size=linker.index_size)
    assert [(c.person_id, c.weight, c.decision) for c in fetched] == [(c.person_id, c.weight, c.decision) for c in in_memory]


def test_thresholds_grow_with_the_index(trained):
    t = trained.thresholds
    assert t.match_at(1_000_000) - t.match_at(1_000) == pytest.approx(9.97, abs=0.01), "log2(1000) bits more for 1000x the persons"
    assert t.review_at(10_000) < t.match_at(10_000), "the review band lies below the match threshold"


def test_model_round_trips_through_json(trained):
    data = json.loads(json.dumps(trained.to_dict()))
    again = Linker.from_dict(data)
    r1 = PersonRecord("x", given_name="Eva", family_name="Roth", birth_date="1990-01-01")
    r2 = PersonRecord("y", given_name="Eva", family_name="Rot", birth_date="1990-01-01")
    trained_score = trained.score(r1, [r2], index_size=10_000)
    again_score = again.score(r1, [r2], index_size=10_000)
    assert trained_score == again_score, "a stored model must score exactly like the trained one"


def test_small_inputs_use_the_default_model():
    records = [PersonRecord("1", given_name="Jürgen", family_name="Müller", birth_date="01.02.1980", postcode="01067"),
               PersonRecord("2", given_name="Juergen", family_name="Mueller", birth_date="1980-02-01", postcode="1067"),
               PersonRecord("3", given_name="Anna", family_name="Schmidt", birth_date="03.04.1990", postcode="12345")]
    pairs = Linker().dedupe(records, fit=True)
    assert [(p.id_a, p.id_b, p.decision) for p in pairs] == [("1", "2", "match")], f"three records are too few to train on: {pairs}"


def test_an_untrained_linker_says_so():
    with pytest.raises(RuntimeError, match="no model"):
        Linker().match(PersonRecord("q", family_name="X"))


def test_the_person_index_blocks_on_the_index_passes_named_in_its_model_file():
    """The master person index looks up one record at a time among millions: its passes are
    blocking.INDEX_PASSES (family sound narrowed by the given initial, no city-sized blocks), read
    from contracts/dedup/model.json -- the batch linker keeps all of PASSES."""
    from pathlib import Path

    from hub.dedup.blocking import INDEX_PASSES, PASSES
    from hub.dedup.person_index import PersonIndex

    index = PersonIndex.load(Path(__file__).resolve().parents[2] / "contracts")
    assert tuple(p.name for p in index.linker.passes) == INDEX_PASSES
    keys = index.file_form({"given_name": "Jürgen", "family_name": "Müller", "birth_date": "1980-03-09"}).keys
    assert "fiy:657|j|1980" in keys and not any(k.startswith("fy:") for k in keys), keys
    assert [p.name for p in Linker().passes] == [p.name for p in PASSES] and "fy" in [p.name for p in PASSES]

"""German name, date and address normalisation."""

from datetime import date

import pytest

from hub.dedup.normalise import (
    date_key,
    house_number_key,
    match_key,
    nfc,
    parse_date,
    postcode_key,
    search_form,
    split_name,
    split_street_house_number,
    street_key,
)


@pytest.mark.parametrize("spelling", ["Müller", "Mueller", "Muller", "MÜLLER", "mu\u0308ller"])
def test_the_three_legal_spellings_of_an_umlaut_have_one_match_key(spelling):
    assert match_key(spelling) == "muller", f"{spelling!r} must compare equal to Müller"


def test_decomposed_umlauts_are_composed_before_anything_else():
    assert nfc("Mu\u0308ller") == "Müller", "NFC must turn u + combining diaeresis into ü (DIN 91379)"


def test_search_form_follows_icao_transliteration():
    assert search_form("Weiß") == "weiss", "ß must become ss"
    assert search_form("Ähren-Öl") == "aehren-oel", "Ä/Ö must become AE/OE, the hyphen stays"
    assert search_form("Åsa Øberg") == "aasa oeberg", "Nordic letters follow ICAO 9303"
    assert search_form("Şahin Çelik") == "sahin celik", "other diacritics are dropped"
    assert search_form("José  García") == "jose garcia", "runs of spaces become one"
    assert search_form(None) == "" and search_form("  ") == "", "missing names are empty, not None"


def test_double_names_split_into_tokens():
    parts = split_name("Müller-Lüdenscheidt")
    assert parts.tokens == ("muller", "ludenscheidt"), "each part of a double name is its own token"
    assert parts.key == "muller ludenscheidt", "the key keeps both parts in order"


def test_particles_and_titles_are_separated_from_the_name():
    assert split_name("von der Heide").tokens == ("heide",), "von der is a particle, not the name"
    assert split_name("von der Heide").particles == ("von", "der"), "the particles are kept apart"
    assert split_name("Karl-Theodor Freiherr zu Guttenberg").tokens == ("karl", "theodor", "guttenberg")
    assert split_name("Dr. Schäfer").tokens == ("schafer",), "academic titles are not part of the name"
    assert split_name("Le").tokens == ("le",), "a name that is only a particle is kept, not erased"


@pytest.mark.parametrize("text", ["1980-03-07", "07.03.1980", "7.3.1980", "19800307", "07/03/1980"])
def test_german_and_iso_dates_parse_to_the_same_day(text):
    assert parse_date(text) == date(1980, 3, 7), f"{text!r} must be 7 March 1980"


def test_impossible_and_two_digit_year_dates_are_refused():
    assert parse_date("30.02.1980") is None, "30 February is not a date"
    assert parse_date("07.03.80") is None, "a two-digit birth year is ambiguous and must not be guessed"
    assert parse_date("gestern") is None


def test_date_key_keeps_mistyped_dates_as_evidence():
    assert date_key("30.02.1980") == "19800230", "a legacy typo is still one digit from the truth"
    assert date_key("1980-13-05") == "19801305", "a day/month swap that produced month 13 stays comparable"
    assert date_key("") == "" and date_key(None) == ""


@pytest.mark.parametrize("text,expected", [("01067", "01067"), ("1067", "01067"), ("D-01067", "01067"), (1067, "01067"), ("1067.0", "01067"), ("abc", ""), ("123456", "")])
def test_postcodes_are_five_digits_with_their_leading_zero(text, expected):
    assert postcode_key(text) == expected, f"postcode {text!r} must normalise to {expected!r}"


def test_street_spellings_of_strasse_are_one_street():
    keys = {street_key(s) for s in ("Hauptstraße", "Hauptstrasse", "Haupt-Str.", "Hauptstr", "HAUPTSTR.")}
    assert keys == {"hauptstr"}, f"all spellings of Hauptstraße must agree, got {keys}"
    assert street_key("Karl-Marx-Str.") == street_key("Karl Marx Straße"), "hyphens and spaces in street names do not matter"


def test_house_numbers_and_combined_address_lines():
    assert house_number_key("5 A") == house_number_key("5a") == "5a", "5 a and 5a are one house number"
    assert split_street_house_number("Hauptstr. 5a") == ("Hauptstr.", "5a"), "a combined address line is split"

"""Seeded synthetic German person data for the quality tests and the benchmark.

Real case data must never be used to test (Sozialgeheimnis), and FEBRL is Australian: no umlauts,
no birth names, no double names. This module makes German look-alike data from Faker's de_DE
name, street and city lists, and corrupts it the way German registers really differ:

* typing errors (substitution by a keyboard neighbour, deletion, insertion, transposition);
* the three legal spellings of an umlaut (``Müller``/``Mueller``/``Muller``) and ``ß``/``ss``;
* day and month swapped, one wrong digit, the date written ``DD.MM.YYYY`` or ISO;
* a new family name at marriage, the old one kept as birth name (or not known at all);
* a double name shortened to one part (``Müller-Lüdenscheidt`` → ``Lüdenscheidt``);
* a move to a new address, ``Straße``/``Str.``, a postcode that lost its leading zero;
* missing fields.

Everything is driven by one ``random.Random(seed)``: the same seed gives the same data.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Iterator

from faker.providers.address.de_DE import Provider as _Address
from faker.providers.person.de_DE import Provider as _Person

from hub.dedup.records import PersonRecord

__all__ = ["GermanPopulation", "corrupt", "german_link_set", "german_dedup_set", "household_lookalikes"]

_LAST = tuple(n for n in _Person.last_names if " " not in n and n[0].isupper())
_FEMALE = tuple(n for n in _Person.first_names_female if " " not in n)
_MALE = tuple(n for n in _Person.first_names_male if " " not in n)
_CITIES = tuple(_Address.cities)
_STREET_SUFFIX = ("straße", "weg", "gasse", "platz", "ring", "allee")
_PARTICLES = ("von", "von der", "zu", "van", "de")

_KEYBOARD = {
    "q": "wa", "w": "qes", "e": "wrd", "r": "etf", "t": "rzg", "z": "tuh", "u": "zij", "i": "uok", "o": "ipl",
    "p": "oü", "a": "qsy", "s": "adw", "d": "sfe", "f": "dgr", "g": "fht", "h": "gjz", "j": "hku", "k": "jli",
    "l": "kö", "y": "xa", "x": "yc", "c": "xv", "v": "cb", "b": "vn", "n": "bm", "m": "n",
}


_SUFFIXES = ("mann", "er", "bach", "berg", "feld", "meier", "hoff", "ke", "ow", "itz", "sen", "ing", "hardt", "brink",
             "kamp", "wald", "hausen", "dorf", "stein", "rich", "el", "le", "ler", "ner", "land", "horst")


def _extended_surnames() -> tuple[list[str], list[float]]:
    """About 10,000 surnames with a realistic long tail: Faker's 406 plus compounds of their
    stems and common German endings, weighted 1/(rank+50) so that the most frequent name has
    about 0.3 % of the population (Müller's share in Germany) and most names are rare."""
    stems = sorted({n.rstrip("e").rstrip("-") for n in _LAST if n.isalpha() and len(n) > 3})
    names = list(_LAST) + [f"{a}{b}" for a in stems for b in _SUFFIXES if not a.endswith(b)]
    names = list(dict.fromkeys(names))[:10_000]
    weights = [1.0 / (rank + 50) for rank in range(len(names))]
    return names, weights


class GermanPopulation:
    """Generates clean persons; households (same address, same family name) are built in.

    ``realistic_scale`` (for the benchmark) draws surnames from ~10,000 names with a long tail
    and gives each city 5-40 postcodes (~9,000 in all, Germany has 8,200): with Faker's 406
    equally likely surnames a million persons would share names 40 times more often than in
    Germany, which inflates block sizes quadratically. The quality tests keep the small pool:
    it makes coincidences more frequent, i.e. the test harder.
    """

    def __init__(self, seed: int = 0, realistic_scale: bool = False) -> None:
        self.rng = random.Random(seed)
        r = self.rng
        # every city gets postcodes of its own, so postcode and city agree in clean data
        lo, hi = (5, 40) if realistic_scale else (1, 4)
        self.city_postcodes = {c: [f"{r.randrange(1000, 99999):05d}" for _ in range(r.randint(lo, hi))] for c in _CITIES}
        self._surnames, self._surname_cum = None, None
        if realistic_scale:
            names, weights = _extended_surnames()
            self._surnames = names
            total = 0.0
            cum = []
            for w in weights:
                total += w
                cum.append(total)
            self._surname_cum = cum
        self._n = 0

    def _last(self) -> str:
        if self._surnames is None:
            return self.rng.choice(_LAST)
        return self.rng.choices(self._surnames, cum_weights=self._surname_cum)[0]

    def street(self) -> str:
        r = self.rng
        if r.random() < 0.25:
            return f"{r.choice(_FEMALE + _MALE)}-{self._last()}-{r.choice(('Straße', 'Weg', 'Platz', 'Allee'))}"
        return f"{self._last()}{r.choice(_STREET_SUFFIX)}"

    def address(self) -> dict[str, str]:
        r = self.rng
        city = r.choice(_CITIES)
        house = str(r.randint(1, 180)) + (r.choice("abc") if r.random() < 0.08 else "")
        return {"street": self.street(), "house_number": house, "postcode": r.choice(self.city_postcodes[city]), "city": city}

    def given_name(self, female: bool) -> str:
        r = self.rng
        pool = _FEMALE if female else _MALE
        name = r.choice(pool)
        if r.random() < 0.08:  # Anna-Lena, Hans Peter
            name += r.choice(("-", " ")) + r.choice(pool)
        return name

    def family_name(self) -> str:
        r = self.rng
        name = self._last()
        x = r.random()
        if x < 0.04:
            name = f"{name}-{self._last()}"
        elif x < 0.06:
            name = f"{r.choice(_PARTICLES)} {name}"
        return name

    def birth_date(self) -> str:
        r = self.rng
        return f"{r.randint(1950, 2007):04d}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"

    def person(self, **fixed: str) -> PersonRecord:
        r = self.rng
        self._n += 1
        female = r.random() < 0.5
        family = fixed.pop("family_name", None) or self.family_name()
        birth = None
        if female and r.random() < 0.3:
            birth = self.family_name()  # married, took the husband's name
        addr = fixed.pop("address", None) or self.address()
        return PersonRecord(
            record_id=f"p{self._n}",
            given_name=fixed.pop("given_name", None) or self.given_name(female),
            family_name=family,
            birth_name=birth,
            birth_date=fixed.pop("birth_date", None) or self.birth_date(),
            ids={},
            **addr,
        )

    def persons(self, n: int, household_share: float = 0.25) -> list[PersonRecord]:
        """``n`` distinct persons; about ``household_share`` of them live with a relative who
        has the same family name and address (the hard case for linkage)."""
        out: list[PersonRecord] = []
        while len(out) < n:
            p = self.person()
            out.append(p)
            if self.rng.random() < household_share / 2 and len(out) < n:
                out.append(self.relative(p))
        return out

    def relative(self, p: PersonRecord) -> PersonRecord:
        """A household member of ``p``: same family name and address, own given name and birth date."""
        addr = {"street": p.street, "house_number": p.house_number, "postcode": p.postcode, "city": p.city}
        g = p.given_name
        while g == p.given_name:
            g = self.given_name(self.rng.random() < 0.5)
        d = p.birth_date
        while d == p.birth_date:
            d = self.birth_date()
        return self.person(family_name=p.family_name, address=addr, given_name=g, birth_date=d)


# --------------------------------------------------------------------------- corruption

def _typo(s: str, r: random.Random) -> str:
    if len(s) < 3:
        return s
    i = r.randrange(1, len(s))  # the first letter is rarely mistyped
    kind = r.random()
    c = s[i]
    if kind < 0.35 and c.lower() in _KEYBOARD:
        rep = r.choice(_KEYBOARD[c.lower()])
        return s[:i] + (rep.upper() if c.isupper() else rep) + s[i + 1 :]
    if kind < 0.6:
        return s[:i] + s[i + 1 :]
    if kind < 0.8:
        return s[:i] + r.choice("aeinrst") + s[i:]
    if i + 1 < len(s):
        return s[:i] + s[i + 1] + s[i] + s[i + 2 :]
    return s


def _umlaut_variant(s: str, r: random.Random) -> str:
    if not any(ch in s for ch in "äöüÄÖÜß"):
        return s
    style = r.random()
    table = {"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss"} if style < 0.6 else {
        "ä": "a", "ö": "o", "ü": "u", "Ä": "A", "Ö": "O", "Ü": "U", "ß": "ss"}
    return "".join(table.get(ch, ch) for ch in s)


def _german_date(iso: str) -> str:
    y, m, d = iso.split("-")
    return f"{d}.{m}.{y}"


def _dob_error(iso: str, r: random.Random) -> str:
    y, m, d = iso.split("-")
    if r.random() < 0.5 and int(d) <= 12 and d != m:
        return f"{y}-{d}-{m}"  # day and month swapped
    digits = list(y[2:] + m + d)
    while True:
        i = r.randrange(len(digits))
        new = str(r.randrange(10))
        if new == digits[i]:
            continue
        cand = digits.copy()
        cand[i] = new
        yy, mm, dd = "".join(cand[:2]), "".join(cand[2:4]), "".join(cand[4:])
        if 1 <= int(mm) <= 12 and 1 <= int(dd) <= 28:
            return f"{y[:2]}{yy}-{mm}-{dd}"


def corrupt(p: PersonRecord, r: random.Random, new_id: str, pop: GermanPopulation | None = None, max_changes: int = 3) -> PersonRecord:
    """Another system's record of the same person: 1..``max_changes`` realistic differences,
    plus harmless format differences (date notation, ``Str.``, a postcode without its zero)."""
    q = replace(p, record_id=new_id, ids=dict(p.ids))
    changes = ["typo_given", "typo_family", "umlaut", "dob", "marriage", "double", "move", "missing", "given_short", "swap"]
    weights = [10, 12, 12, 10, 6, 3, 5, 8, 3, 1]
    n = r.randint(1, max_changes)
    # dict.fromkeys, not set: a set of strings iterates in an order that changes with
    # PYTHONHASHSEED, which made the "seeded" data differ from run to run
    for ch in dict.fromkeys(r.choices(changes, weights, k=n)):
        if ch == "typo_given" and q.given_name:
            q.given_name = _typo(q.given_name, r)
        elif ch == "typo_family" and q.family_name:
            q.family_name = _typo(q.family_name, r)
        elif ch == "umlaut":
            q.given_name = _umlaut_variant(q.given_name or "", r) or None
            q.family_name = _umlaut_variant(q.family_name or "", r) or None
            q.street = _umlaut_variant(q.street or "", r) or None
        elif ch == "dob" and q.birth_date:
            q.birth_date = _dob_error(str(q.birth_date), r)
        elif ch == "marriage" and pop is not None:
            if q.birth_name is None:
                old = q.family_name
                q.family_name = pop.family_name()
                q.birth_name = old if r.random() < 0.8 else None  # sometimes the birth name is not recorded
            else:
                q.family_name, q.birth_name = q.birth_name, None  # the other system still has the maiden name
        elif ch == "double" and q.family_name and "-" in q.family_name:
            q.family_name = r.choice(q.family_name.split("-"))
        elif ch == "move" and pop is not None:
            addr = pop.address()
            q.street, q.house_number, q.postcode, q.city = addr["street"], addr["house_number"], addr["postcode"], addr["city"]
        elif ch == "missing":
            # name and birth date are mandatory in the Jobcenter's and the providers' systems;
            # what goes missing in practice is the address detail
            field = r.choices(("given_name", "birth_date", "street", "postcode", "city", "house_number"), (1, 1, 3, 3, 3, 3))[0]
            setattr(q, field, None)
        elif ch == "given_short" and q.given_name and (" " in q.given_name or "-" in q.given_name):
            q.given_name = q.given_name.replace("-", " ").split(" ")[0]
        elif ch == "swap":
            q.given_name, q.family_name = q.family_name, q.given_name
    # format differences that carry no information
    if q.birth_date and r.random() < 0.5:
        q.birth_date = _german_date(str(q.birth_date))
    if q.street and r.random() < 0.3:
        q.street = q.street.replace("straße", "str.").replace("Straße", "Str.")
    if q.postcode and q.postcode.startswith("0") and r.random() < 0.5:
        q.postcode = q.postcode.lstrip("0")
    if q.family_name and r.random() < 0.05:
        q.family_name = q.family_name.upper()
    return q


def german_link_set(n: int, seed: int = 0, overlap: float = 0.8) -> tuple[list[PersonRecord], list[PersonRecord], set[tuple[str, str]]]:
    """Two registers: A with ``n`` persons, B with ``overlap*n`` of them (each corrupted) plus
    new persons. Returns (A, B, true pairs (id in A, id in B))."""
    pop = GermanPopulation(seed)
    r = pop.rng
    base = pop.persons(n)
    a = [replace(p, record_id=f"a{i}") for i, p in enumerate(base)]
    b: list[PersonRecord] = []
    truth: set[tuple[str, str]] = set()
    for i, p in enumerate(base):
        if r.random() < overlap:
            q = corrupt(p, r, f"b{len(b)}", pop)
            truth.add((f"a{i}", q.record_id))
            b.append(q)
    for p in pop.persons(n - len(b)):
        b.append(replace(p, record_id=f"b{len(b)}"))
    r.shuffle(b)
    return a, b, truth


def german_dedup_set(n_persons: int, seed: int = 0, dup_share: float = 0.4, max_dups: int = 3) -> tuple[list[PersonRecord], set[tuple[str, str]]]:
    """One register where ``dup_share`` of the persons have 1..``max_dups`` duplicate records.
    Returns (records, true pairs as sorted id tuples, all pairs within a person)."""
    pop = GermanPopulation(seed)
    r = pop.rng
    out: list[PersonRecord] = []
    truth: set[tuple[str, str]] = set()
    for i, p in enumerate(pop.persons(n_persons)):
        ids = [f"r{i}-0"]
        out.append(replace(p, record_id=ids[0]))
        if r.random() < dup_share:
            for k in range(1, r.randint(1, max_dups) + 1):
                q = corrupt(p, r, f"r{i}-{k}", pop, max_changes=2)
                out.append(q)
                ids.append(q.record_id)
        for x in range(len(ids)):
            for y in range(x + 1, len(ids)):
                truth.add(tuple(sorted((ids[x], ids[y]))))
    r.shuffle(out)
    return out, truth


def household_lookalikes(p: PersonRecord, k: int, r: random.Random, pop: GermanPopulation, prefix: str, taken_given: set[str]) -> Iterator[PersonRecord]:
    """``k`` household members of ``p`` (same family name and address, their own given name and
    birth date) — records that share most of ``p``'s evidence but are other people."""
    for j in range(k):
        g = p.given_name
        while not g or g in taken_given:
            g = pop.given_name(r.random() < 0.5)
        taken_given.add(g)
        d = p.birth_date
        while d == p.birth_date:
            d = pop.birth_date()
        yield replace(p, record_id=f"{prefix}{j}", given_name=g, birth_date=d, birth_name=None, ids={})

"""`hub dedup batch`, tested on the typer app the hub mounts as `hub dedup`."""

import csv
import json

import pytest
from typer.testing import CliRunner

from hub.dedup.batch import app, detect_encoding, parse_column_map
from hub.dedup.synthetic import german_link_set

runner = CliRunner()
MAP = "record_id=nr,given_name=vorname,family_name=nachname,birth_name=geburtsname,birth_date=geburtsdatum,street=strasse,house_number=hausnr,postcode=plz,city=ort"
HEADER = ["nr", "vorname", "nachname", "geburtsname", "geburtsdatum", "strasse", "hausnr", "plz", "ort"]


def write(path, records, encoding="utf-8-sig", delimiter=";"):
    with path.open("w", encoding=encoding, newline="") as fh:
        w = csv.writer(fh, delimiter=delimiter)
        w.writerow(HEADER)
        for r in records:
            w.writerow([r.record_id, r.given_name or "", r.family_name or "", r.birth_name or "", r.birth_date or "",
                        r.street or "", r.house_number or "", r.postcode or "", r.city or ""])
    return path


def read_out(path):
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def registers():
    return german_link_set(800, seed=21)


def test_two_files_are_linked(tmp_path, registers):
    a, b, truth = registers
    fa = write(tmp_path / "a.csv", a, encoding="iso-8859-15")
    fb = write(tmp_path / "b.csv", b, encoding="cp1252", delimiter=",")
    out = tmp_path / "pairs.csv"
    result = runner.invoke(app, ["batch", str(fa), str(fb), "--columns", MAP, "--out", str(out)])
    assert result.exit_code == 0, f"linking must succeed: {result.output}"
    rows = read_out(out)
    assert rows and list(rows[0]) == ["id_a", "id_b", "score", "decision"], "output columns are fixed by the surface"
    assert {r["decision"] for r in rows} <= {"match", "review"}, "only match and review pairs are written"
    matched = {(r["id_a"], r["id_b"]) for r in rows if r["decision"] == "match"}
    right = len(matched & truth)
    assert right / len(truth) >= 0.97 and right / len(matched) >= 0.99, f"{right} of {len(truth)} found, {len(matched)} claimed"


def test_one_file_is_deduplicated(tmp_path, registers):
    a, b, truth = registers
    f = write(tmp_path / "ab.csv", a + b)
    out = tmp_path / "pairs.csv"
    result = runner.invoke(app, ["batch", str(f), "--columns", MAP, "--out", str(out)])
    assert result.exit_code == 0, result.output
    matched = {tuple(sorted((r["id_a"], r["id_b"]))) for r in read_out(out) if r["decision"] == "match"}
    truth_u = {tuple(sorted(t)) for t in truth}
    assert len(matched & truth_u) / len(truth_u) >= 0.97, "the pairs of one person across A and B must be found"


def test_column_map_from_json_and_yaml(tmp_path):
    j = tmp_path / "map.json"
    j.write_text(json.dumps({"given_name": "vorname", "ids": {"kundennummer": "kdnr"}}))
    assert parse_column_map(str(j)) == {"given_name": "vorname", "id:kundennummer": "kdnr"}
    y = tmp_path / "map.yaml"
    y.write_text("family_name: nachname\nid:bg: bgnr\n")
    assert parse_column_map(str(y)) == {"family_name": "nachname", "id:bg": "bgnr"}


@pytest.mark.parametrize(
    "data,encoding",
    [("Müller".encode("utf-8"), "utf-8"), ("\ufeffMüller".encode("utf-8"), "utf-8-sig"),
     ("Müller €".encode("cp1252"), "cp1252"), ("Müller €".encode("iso-8859-15"), "iso-8859-15"),
     ("Müller".encode("utf-16"), "utf-16")],
)
def test_encodings_are_detected(data, encoding):
    assert detect_encoding(data) == encoding


def test_usage_errors_exit_2_with_one_sentence(tmp_path):
    f = write(tmp_path / "a.csv", [])
    for args, why in [
        (["batch", str(f), "--columns", "vorname", "--out", "x.csv"], "MAP entry without ="),
        (["batch", str(f), "--columns", "shoe_size=x", "--out", "x.csv"], "unknown field"),
        (["batch", str(f), str(f), str(f), "--columns", MAP, "--out", "x.csv"], "three files"),
        (["batch", str(f), "--out", "x.csv"], "no --columns"),
    ]:
        r = runner.invoke(app, args)
        assert r.exit_code == 2, f"{why}: expected usage error 2, got {r.exit_code}: {r.output}"
        assert "Traceback" not in r.output, f"{why}: no traceback on usage errors"


def test_refused_input_exits_1_with_one_sentence(tmp_path, registers):
    a, _, _ = registers
    good = write(tmp_path / "a.csv", a[:50])
    bad_col = runner.invoke(app, ["batch", str(good), "--columns", "given_name=vorname,family_name=name", "--out", str(tmp_path / "o.csv")])
    assert bad_col.exit_code == 1 and "'name'" in bad_col.output, f"a missing column is refused: {bad_col.output}"
    missing = runner.invoke(app, ["batch", str(tmp_path / "nope.csv"), "--columns", MAP, "--out", str(tmp_path / "o.csv")])
    assert missing.exit_code == 1 and "does not exist" in missing.output, missing.output
    dup = write(tmp_path / "dup.csv", [a[0], a[0]])
    r = runner.invoke(app, ["batch", str(dup), "--columns", MAP, "--out", str(tmp_path / "o.csv")])
    assert r.exit_code == 1 and "twice" in r.output, f"duplicate record ids are refused: {r.output}"
    for r in (bad_col, missing):
        assert "Traceback" not in r.output and r.output.count("\n") == 1, f"one sentence, no traceback: {r.output!r}"


def test_an_unwritable_out_is_a_usage_error_before_any_work(tmp_path, registers):
    a, _, _ = registers
    f = write(tmp_path / "a.csv", a[:50])
    for out, why in [("/proc/nope/pairs.csv", "a directory that cannot be created"), (str(tmp_path), "a directory")]:
        r = runner.invoke(app, ["batch", str(f), "--columns", MAP, "--out", out])
        assert r.exit_code == 2 and "--out" in r.output and r.output.count("\n") == 1, f"{why}: {r.output!r}"


def test_a_spreadsheets_unicode_text_is_read_and_utf16_without_a_mark_refused(tmp_path, registers):
    a, _, _ = registers
    tab = write(tmp_path / "a.txt", a[:60], encoding="utf-16", delimiter="\t")
    out = tmp_path / "o.csv"
    r = runner.invoke(app, ["batch", str(tab), "--columns", MAP, "--out", str(out)])
    assert r.exit_code == 0, f"UTF-16 with a byte order mark, tab-separated, as spreadsheets save it: {r.output}"
    bare = tmp_path / "b.csv"
    bare.write_bytes(tab.read_bytes()[2:])
    r = runner.invoke(app, ["batch", str(bare), "--columns", MAP, "--out", str(out)])
    assert r.exit_code == 1 and "NUL" in r.output and r.output.count("\n") == 1, f"UTF-16 without a mark: one clear sentence: {r.output!r}"


def test_unreadable_birth_dates_are_reported_not_swallowed(tmp_path, registers):
    from dataclasses import replace

    a, _, _ = registers
    records = [replace(r, birth_date=bd) if i < 3 else r for i, (r, bd) in enumerate(zip(a[:40], ["09.03.78", "31.02.1978", "xx"] + [None] * 40))]
    f = write(tmp_path / "a.csv", records)
    r = runner.invoke(app, ["batch", str(f), "--columns", MAP, "--out", str(tmp_path / "o.csv")])
    assert r.exit_code == 0, r.output
    assert "3 birth date(s)" in r.output and "compared as missing" in r.output, f"two-digit years, impossible dates and text must be reported: {r.output}"

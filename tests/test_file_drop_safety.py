"""The batch file channel trusts nothing a partner puts into its directories.

A partner controls its drop directory: it can place symlinks, hard links, FIFOs and huge files there,
and replace the hub's own directories (`in`, `in/processed`, `out`) by links. The hub reads only plain
regular files of the partner's own, never follows a link out of the partner's directory (to read a
file, to move one, or to write another partner's data), never waits on a FIFO, refuses an oversized
file with a rueckweisung, and keeps serving every other partner whatever one partner's directory holds.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from hub.store import db
from hub.endpoints import ingress
from hub.endpoints.file_drop import FILE_MESSAGES, FileDrop, atomic_write
from hub.runtime import Hub
from hub.store.tables import deliveries, messages
from tests.conftest import JOBCENTER, agency_sample, drain, encode
from tests.test_file_drop import COLUMNS, PARTNER, record

#: a second file partner, so a test can show one partner's directory never stops the other's
NEIGHBOUR = "sozialamt-neustadt"


@pytest.fixture
def drop(hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FileDrop]:
    """The channel with two file partners (the neighbour exists for this test only)."""
    monkeypatch.setitem(hub.partners, NEIGHBOUR, dataclasses.replace(hub.partners[PARTNER], id=NEIGHBOUR, name="Stadt Neustadt"))
    yield FileDrop(hub, root=tmp_path / "drop", settle=0)


def batch(sender: str, *given: str) -> bytes:
    """A batch file of `sender` with one record per given name."""
    lines = [record(g, "Beispiel").replace(f";{PARTNER};", f";{sender};") for g in given]
    return ("\r\n".join([COLUMNS, *lines]) + "\r\n").encode("iso-8859-15")


def stored(hub: Hub, sender: str | None = None) -> int:
    query = sa.select(sa.func.count()).select_from(messages)
    if sender is not None:
        query = query.where(messages.c.sender == sender)
    with db.read(hub.engine) as conn:
        return conn.execute(query).scalar_one()


def scan_twice(drop: FileDrop) -> int:
    """A file is taken on the second scan that sees it with the same size."""
    return drop.scan() + drop.scan()


def partner_dir(drop: FileDrop, partner: str) -> Path:
    return drop.root / partner


def test_a_symlink_in_the_inbox_is_never_read_or_moved(hub: Hub, drop: FileDrop, tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere" / "secret.csv"
    secret.parent.mkdir()
    content = batch(PARTNER, "Anna")
    secret.write_bytes(content)
    link = drop.inbox(hub.partners[PARTNER]) / "link.csv"
    link.symlink_to(secret)

    assert scan_twice(drop) == 0, "a symlink must not be taken as a file"
    assert stored(hub) == 0, "the file a symlink points to (outside the drop directory) was read and stored"
    assert link.is_symlink() and secret.read_bytes() == content, "the link and its target must stay untouched"


def test_a_hard_link_in_the_inbox_is_never_read(hub: Hub, drop: FileDrop, tmp_path: Path) -> None:
    """A hard link can be a file from anywhere on the same file system; a partner's own file has one link."""
    secret = tmp_path / "secret.csv"
    secret.write_bytes(batch(PARTNER, "Anna"))
    os.link(secret, drop.inbox(hub.partners[PARTNER]) / "hardlink.csv")

    assert scan_twice(drop) == 0 and stored(hub) == 0, "a file with a second hard link was read"


def test_a_fifo_named_csv_never_blocks_the_channel(hub: Hub, drop: FileDrop) -> None:
    inbox = drop.inbox(hub.partners[PARTNER])
    os.mkfifo(inbox / "pipe.csv")
    (inbox / "real.csv").write_bytes(batch(PARTNER, "Anna"))

    scanning = threading.Thread(target=scan_twice, args=(drop,), daemon=True)
    scanning.start()
    scanning.join(10)
    assert not scanning.is_alive(), "the scan hangs on a FIFO named *.csv: the channel would stop for every partner"
    assert stored(hub) == 1, "the plain file beside the FIFO must still be taken"
    assert (inbox / "pipe.csv").exists(), "the FIFO is left alone"


@pytest.mark.parametrize("linked", ["in", "in/processed", "out"])
def test_a_partner_directory_that_is_a_symlink_stops_that_partner_and_no_other(hub: Hub, drop: FileDrop, tmp_path: Path, linked: str) -> None:
    """`in/processed` as a link would let os.replace move files into any directory the hub can write
    (another partner's out/); `out` as a link would send this partner's answers elsewhere."""
    victim = tmp_path / "victim"
    victim.mkdir()
    inbox = drop.inbox(hub.partners[PARTNER])
    (inbox / "mine.csv").write_bytes(batch(PARTNER, "Anna"))
    drop.outbox(hub.partners[PARTNER])
    real = partner_dir(drop, PARTNER) / linked
    real.mkdir(exist_ok=True)
    real.rename(victim / "moved")
    real.symlink_to(victim / "moved" if linked == "in" else victim)
    (drop.inbox(hub.partners[NEIGHBOUR]) / "theirs.csv").write_bytes(batch(NEIGHBOUR, "Berta", "Clara"))

    assert scan_twice(drop) == 1, "only the neighbour's file may be taken"
    assert stored(hub, NEIGHBOUR) == 2, "one partner's bad directory must not stop the channel for the others"
    assert stored(hub, PARTNER) == 0, f"a partner whose {linked} is a symlink must be skipped"
    assert [p.name for p in victim.iterdir() if p.name != "moved"] == [], "nothing may be moved or written through the link"


def test_deliveries_are_never_written_through_a_symlinked_out_directory(hub: Hub, drop: FileDrop) -> None:
    """A partner that links its out/ to its neighbour's would otherwise have its data land there."""
    data = agency_sample("person.stammdaten.0100")
    data["header"]["reader"] = {"id": PARTNER}
    ingress.accept(hub, hub.partners[JOBCENTER], encode(hub, "agency-xml", data), "application/xml")
    drain(hub)
    neighbour_out = drop.outbox(hub.partners[NEIGHBOUR])
    out = drop.outbox(hub.partners[PARTNER])
    out.rmdir()
    out.symlink_to(neighbour_out)

    assert drop.deliver() == 0, "deliveries were written through a symlinked out/"
    assert list(neighbour_out.iterdir()) == [], "a partner's deliveries were written into another partner's out/"
    with db.read(hub.engine) as conn:
        statuses = {r.status for r in conn.execute(sa.select(deliveries.c.status).where(deliveries.c.recipient == PARTNER))}
    assert statuses == {"pending"}, "undelivered files must stay pending until the directory is fixed"


def test_a_file_over_the_size_limit_is_refused_with_a_rueckweisung_and_moved_aside(hub: Hub, tmp_path: Path) -> None:
    drop = FileDrop(hub, root=tmp_path / "drop", settle=0, max_file_bytes=1000)
    inbox = drop.inbox(hub.partners[PARTNER])
    big = batch(PARTNER, *["Anna"] * 10)
    assert len(big) > 1000
    (inbox / "big.csv").write_bytes(big)

    assert scan_twice(drop) == 1
    assert stored(hub) == 0, "no record of an oversized file may be stored"
    assert not (inbox / "big.csv").exists() and (inbox / "processed" / "big.csv").exists(), "the file is moved aside"
    (answer,) = drop.outbox(hub.partners[PARTNER]).glob("rueckweisung_big_*.csv")
    text = answer.read_bytes().decode("iso-8859-15")
    assert "too-large" in text and "1000 bytes" in text and "big.csv" in text, f"the rueckweisung must name the reason: {text}"


def test_the_file_limit_is_a_multiple_of_the_message_limit(hub: Hub, tmp_path: Path) -> None:
    assert FileDrop(hub, root=tmp_path).max_file_bytes == FILE_MESSAGES * hub.settings.max_message_bytes


def test_a_temporary_name_planted_as_a_symlink_is_not_written_through(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    target, other = tmp_path / "target", tmp_path / "other"
    target.write_bytes(b"keep")
    other.write_bytes(b"keep")
    (out / ".answer.csv.tmp").symlink_to(target)
    (out / "answer.csv").symlink_to(other)

    atomic_write(out / "answer.csv", b"data")

    assert target.read_bytes() == b"keep" and other.read_bytes() == b"keep", "the hub wrote through a partner's symlink"
    assert not (out / "answer.csv").is_symlink() and (out / "answer.csv").read_bytes() == b"data"

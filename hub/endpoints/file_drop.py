"""File drop channel adapter for partners that exchange batch files (municipal legacy systems).

Each such partner has a directory pair under HUB_DROP_DIR: `<partner>/in` where it drops files for
the hub, `<partner>/out` where the hub leaves files for it. Files are only taken once complete: a
partner writes `name.tmp` (or a dotfile) and renames it to `name.csv`; as a second guard a file must
keep its size for one scan and be older than `settle` seconds. The hub writes the same way: to a
temporary name, fsync, then an atomic rename, so a reader never sees half a file.

Every record of a file becomes one message through the normal ingress (validated, stored, queued in
one transaction; resends deduplicated by nachrichtenUUID), so a crash in the middle of a file is
repaired by taking the whole file again. Refused records are answered at once with a rueckweisung
file naming the line of each finding in the partner's original file.

A partner controls what its directories hold, so nothing in them is trusted. Every directory is
opened component by component below HUB_DROP_DIR without following a symlink (`<partner>`, `in`,
`in/processed`, `out` must be real directories, or that partner is skipped and an error logged), and
every file is then read, moved and written relative to those open directories. Only regular files
with a single link are read (a symlink, a FIFO or a device named `*.csv` is never opened; a hard link
could be a file from elsewhere), opened with O_NOFOLLOW|O_NONBLOCK and checked again on the open
descriptor, and at most `max_file_bytes` of them. One partner's directory never stops the channel:
every partner and every file is handled on its own.
"""

from __future__ import annotations

import os
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog

from hub.store import db
from hub.endpoints import ingress
from hub.store import message_store
from hub.canonical import Message
from hub.findings import Finding, Refusal
from hub.store.history import audit
from hub.metrics import count_refused
from hub.partners import Partner
from hub.runtime import Hub
from hub.store.tables import deliveries

log = structlog.get_logger("hub.file_drop")

#: a batch file may be as large as this many messages of the largest size (HUB_MAX_MESSAGE_BYTES):
#: 100 MB at the default, hundreds of thousands of records; the whole file is read into memory
FILE_MESSAGES = 20

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: O_NONBLOCK: opening a FIFO that slipped past the lstat check returns at once instead of waiting
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeDirectory(Exception):
    """A drop directory that is not a real directory (a symlink, a file, a FIFO): never used."""


class NotTaken(Exception):
    """An entry of an inbox that is not a plain file of its own: left where it is, logged, not read."""


class Problems:
    """What a partner's directories held in the last round of one task: each problem is logged when it
    appears (again), not every half second while it lasts."""

    def __init__(self) -> None:
        self._before: set[tuple[str, ...]] = set()
        self._now: set[tuple[str, ...]] = set()

    def report(self, key: tuple[str, ...], event: str, level: str = "warning", **fields: Any) -> None:
        self._now.add(key)
        if key not in self._before:
            getattr(log, level)(event, **fields)

    def end_round(self) -> None:
        self._before, self._now = self._now, set()


def _plain_name(name: str) -> str:
    """`name` if it is one path component; every path the channel touches is built from such names."""
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        raise UnsafeDirectory(f"{name!r} is not a plain file or directory name")
    return name


def _subdirectory(parent_fd: int, name: str) -> int:
    """Open (create if missing) directory `name` below `parent_fd`; a symlink or a non-directory is refused."""
    _plain_name(name)
    try:
        os.mkdir(name, dir_fd=parent_fd)
    except FileExistsError:
        pass
    try:
        return os.open(name, _DIRECTORY, dir_fd=parent_fd)
    except OSError as exc:  # ELOOP: a symlink; ENOTDIR: a file, a FIFO, a symlink (with O_DIRECTORY)
        raise UnsafeDirectory(f"{name} is not a real directory ({exc.strerror})") from None


def _write_at(dir_fd: int, name: str, data: bytes) -> None:
    """Write `data` as `name` below `dir_fd` so that it is either absent or complete (tmp + fsync + rename).

    The temporary file is created new (O_EXCL|O_NOFOLLOW): a symlink planted under its name is removed,
    never written through; the rename replaces a link named `name` itself, not its target."""
    tmp = f".{_plain_name(name)}.tmp"
    try:
        os.unlink(tmp, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    with open(os.open(tmp, _CREATE, 0o666, dir_fd=dir_fd), "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.fsync(dir_fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` so that `path` either does not exist or is complete (tmp + fsync + rename)."""
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _write_at(dir_fd, path.name, data)
    finally:
        os.close(dir_fd)


def _check_plain(info: os.stat_result) -> None:
    """NotTaken unless `info` is a regular file with one link (a hard link may be a file from elsewhere)."""
    if not stat.S_ISREG(info.st_mode):
        raise NotTaken("is not a regular file (a symlink, a FIFO, a device or a directory)")
    if info.st_nlink != 1:
        raise NotTaken("has more than one hard link")


def read_regular(dir_fd: int, name: str, limit: int) -> bytes:
    """The bytes of regular file `name` below `dir_fd`, or NotTaken / a too-large Refusal.

    Checked on the open descriptor, so a file swapped for a symlink or a FIFO after the directory
    listing is still never followed or waited on; read to at most `limit` bytes even if it grows."""
    try:
        fd = os.open(_plain_name(name), _READ, dir_fd=dir_fd)
    except OSError as exc:  # ELOOP: it became a symlink
        raise NotTaken(f"cannot be opened as a plain file ({exc.strerror})") from None
    with open(fd, "rb") as fh:
        _check_plain(os.fstat(fd))
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise Refusal("too-large", f"The file exceeds the limit of {limit} bytes for a batch file; split it into several files")
    return data


class FileDrop:
    def __init__(self, hub: Hub, root: Path | None = None, settle: float = 1.0, max_file_bytes: int | None = None) -> None:
        self.hub = hub
        self.root = Path(root or hub.settings.drop_dir)
        self.settle = settle
        self.max_file_bytes = max_file_bytes or FILE_MESSAGES * hub.settings.max_message_bytes
        self._sizes: dict[tuple[str, str], int] = {}
        self._scan_problems = Problems()
        self._delivery_problems = Problems()

    def partners(self) -> list[Partner]:
        return [p for p in self.hub.partners.values() if p.delivery == "file"]

    @contextmanager
    def directory(self, partner: Partner, *parts: str) -> Iterator[int]:
        """A descriptor of <root>/<partner>/<parts...>, created if missing, every component below the
        root a real directory (UnsafeDirectory otherwise). The root is the operator's and may be a link."""
        self.root.mkdir(parents=True, exist_ok=True)
        with ExitStack() as stack:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            stack.callback(os.close, fd)
            for name in (partner.id, *parts):
                fd = _subdirectory(fd, name)
                stack.callback(os.close, fd)
            yield fd

    def _checked_path(self, partner: Partner, *parts: str) -> Path:
        with self.directory(partner, *parts):
            return self.root.joinpath(partner.id, *parts)

    def inbox(self, partner: Partner) -> Path:
        return self._checked_path(partner, "in")

    def outbox(self, partner: Partner) -> Path:
        return self._checked_path(partner, "out")

    # -- ingress -----------------------------------------------------------------------------------
    def _ready(self, partner: Partner, entry: os.DirEntry) -> bool:
        """A complete plain file: `*.csv`, no dotfile, not a symlink or special file, size kept for a scan."""
        if entry.name.startswith(".") or not entry.name.endswith(".csv"):
            return False
        try:
            info = entry.stat(follow_symlinks=False)  # lstat: a symlink is seen as one
            _check_plain(info)
        except FileNotFoundError:
            return False
        except NotTaken as exc:
            self._not_taken(partner, entry.name, exc)
            return False
        key = (partner.id, entry.name)
        previous = self._sizes.get(key)
        self._sizes[key] = info.st_size
        return previous == info.st_size and time.time() - info.st_mtime >= self.settle

    def scan(self) -> int:
        """Take every complete file from every partner's drop directory; returns files taken."""
        return self._per_partner(self._scan_partner, self._scan_problems, "file_drop.partner_failed")

    def _per_partner(self, work: Callable[[Partner], int], problems: Problems, failed: str) -> int:
        """`work` for every file partner, summed: one partner's trouble never stops the others, and a
        directory that is unsafe is skipped (never read from, never written through) and reported once
        until an operator fixes it."""
        done = 0
        for partner in self.partners():
            try:
                done += work(partner)
            except UnsafeDirectory as exc:
                problems.report(("unsafe", partner.id, str(exc)), "file_drop.unsafe_directory", "error", partner=partner.id, error=str(exc))
            except Exception as exc:  # noqa: BLE001
                log.error(failed, partner=partner.id, error=repr(exc))
        problems.end_round()
        return done

    def _scan_partner(self, partner: Partner) -> int:
        """Take the complete files of one partner; its directories are all checked before anything is read."""
        taken = 0
        with ExitStack() as stack:
            inbox = stack.enter_context(self.directory(partner, "in"))
            done = _subdirectory(inbox, "processed")
            stack.callback(os.close, done)
            out = stack.enter_context(self.directory(partner, "out"))
            with os.scandir(inbox) as entries:
                listed = list(entries)
            self._forget_gone(partner, {e.name for e in listed})
            for name in sorted(e.name for e in listed if self._ready(partner, e)):
                try:
                    self._take(partner, inbox, done, out, name)
                    taken += 1
                except NotTaken as exc:
                    self._not_taken(partner, name, exc)
                except Exception as exc:  # noqa: BLE001 - the next file still gets its turn
                    log.error("file_drop.file_failed", partner=partner.id, file=name, error=repr(exc))
                finally:
                    self._sizes.pop((partner.id, name), None)
        return taken

    def _not_taken(self, partner: Partner, name: str, exc: NotTaken) -> None:
        self._scan_problems.report(("not-taken", partner.id, name), "file_drop.not_taken", partner=partner.id, file=name, reason=str(exc))

    def _forget_gone(self, partner: Partner, names: set[str]) -> None:
        """Drop remembered sizes of this partner's files that are no longer there."""
        for key in [k for k in self._sizes if k[0] == partner.id and k[1] not in names]:
            del self._sizes[key]

    def _take(self, partner: Partner, inbox: int, done: int, out: int, name: str) -> None:
        """Read one file, feed its records through ingress, answer refused ones, move it to processed/."""
        try:
            data = read_regular(inbox, name, self.max_file_bytes)
        except Refusal as refusal:  # the file as a whole: answered, and moved aside like any other
            self._answer_refusals(partner, out, name, [(None, b"", refusal)])
            accepted, refused = 0, 1
        else:
            accepted, refused = self._ingest(partner, out, name, data)
        self._move_aside(inbox, done, name)
        log.info("file_drop.ingested", partner=partner.id, file=name, accepted=accepted, refused=refused)

    def _ingest(self, partner: Partner, out: int, name: str, data: bytes) -> tuple[int, int]:
        """Feed each record of one file through ingress; answer refused ones; returns (accepted, refused)."""
        adapter = self.hub.adapter(partner.format)
        accepted, refused = 0, []
        try:
            records = adapter.split(data) if data.strip() else []
        except Refusal as refusal:  # the file as a whole (e.g. UTF-16): one answer, not one per line
            self._answer_refusals(partner, out, name, [(None, b"", refusal)])
            return 0, 1
        if not records:
            refused.append((1, data, Refusal("malformed", "The file has no record")))
        for line, record in records:
            try:
                ingress.accept(self.hub, partner, record, adapter.media_type)
                accepted += 1
            except Refusal as refusal:
                refused.append((line, record, refusal))
        if refused:
            self._answer_refusals(partner, out, name, refused)
        return accepted, len(refused)

    @staticmethod
    def _move_aside(inbox: int, done: int, name: str) -> None:
        """Move a taken file from in/ to in/processed/ (a new name if one of that name is there)."""
        target = name
        try:
            os.stat(target, dir_fd=done, follow_symlinks=False)
            stem, dot, suffix = name.rpartition(".")
            target = f"{stem}.{int(time.time() * 1000)}{dot}{suffix}"
        except FileNotFoundError:
            pass
        os.replace(name, target, src_dir_fd=inbox, dst_dir_fd=done)

    def _answer_refusals(self, partner: Partner, out: int, filename: str, refused: list[tuple[int | None, bytes, Refusal]]) -> None:
        adapter = self.hub.adapter(partner.format)
        version = partner.version_for("administration.rueckweisung.0010", self.hub.registry.versions("administration.rueckweisung.0010", partner.format))
        records = []
        for line, record, refusal in refused:
            count_refused(refusal.kind, partner.id, refusal.message_type, self.hub.registry.types)
            try:
                reference = adapter.peek_header(record).get("message_uuid")
                uuid.UUID(str(reference))
            except (Refusal, ValueError, TypeError, IndexError):
                reference = str(uuid.UUID(int=0))  # the record names no usable UUID
            # lines in the single-record file are 2; the partner needs the line of its own file
            where = filename if line is None else f"{filename} line {line}"
            findings = [
                {"message": f.message[:4000], "location": where + (f", column {f.column}" if f.column else "")}
                for f in (refusal.findings or [Finding(refusal.detail)])
            ]
            message = Message.build(
                {
                    "message_uuid": str(uuid.uuid4()),
                    "message_type": "administration.rueckweisung.0010",
                    "created_at": db.utcnow().isoformat(),
                    "author": {"id": "hub"},
                    "reader": {"id": partner.id},
                    "reference_uuid": reference,
                    "purpose": "administration",
                    "legal_basis": "§ 80 SGB X",
                    "version": version,
                },
                {"reason": refusal.kind, "detail": refusal.detail, "findings": findings},
            )
            records.append(adapter.encode(message, version))
        stem = filename.rpartition(".")[0][:100]  # a long partner file name must not make ours too long
        _write_at(out, f"rueckweisung_{stem}_{int(time.time() * 1000)}.csv", adapter.join(records))

    # -- egress ------------------------------------------------------------------------------------
    def deliver(self) -> int:
        """Write pending deliveries of file partners as batch files; returns deliveries written."""
        return self._per_partner(self._deliver_to, self._delivery_problems, "file_drop.delivery_failed")

    def _deliver_to(self, partner: Partner) -> int:
        with db.read(self.hub.engine) as conn:
            rows = conn.execute(
                sa.select(deliveries.c.id, deliveries.c.message_type, deliveries.c.version, deliveries.c.purpose, deliveries.c.body)
                .where(deliveries.c.recipient == partner.id, deliveries.c.status == "pending")
                .order_by(deliveries.c.id)
                .limit(5000)
            ).all()
        if not rows:
            return 0
        groups: dict[tuple[str, str], list] = {}
        for row in rows:
            groups.setdefault((row.message_type, row.version), []).append(row)
        adapter = self.hub.adapter(partner.format)
        written = 0
        with self.directory(partner, "out") as out:
            for (message_type, _version), group in groups.items():
                # named after its first delivery: a crash before the acks below rewrites the same file
                name = f"{message_type}_{group[0].id}.csv"
                _write_at(out, name, adapter.join([r.body for r in group]))
                legal_basis = self.hub.purposes.legal_basis
                with db.write(self.hub.engine) as conn:
                    for row in group:
                        message_store.acknowledge(conn, partner, row.id, legal_basis)
                    for purpose in sorted({r.purpose for r in group}):
                        ids = [r.id for r in group if r.purpose == purpose]
                        audit(conn, "hub", "file-written", partner=partner.id, purpose=purpose, legal_basis=legal_basis(purpose), file=name, deliveries=ids)
                written += len(group)
        return written

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.scan()
                self.deliver()
            except Exception as exc:  # noqa: BLE001 - never let the channel die; try again next round
                log.warning("file_drop.error", error=repr(exc))
            stop.wait(max(self.hub.settings.poll_interval * 10, 0.5))

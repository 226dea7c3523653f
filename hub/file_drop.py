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
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
import structlog

from hub import db, ingress, message_store
from hub.canonical import Message
from hub.findings import Finding, Refusal
from hub.history import audit
from hub.partners import Partner
from hub.runtime import Hub
from hub.tables import deliveries

log = structlog.get_logger("hub.file_drop")


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` so that `path` either does not exist or is complete (tmp + fsync + rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class FileDrop:
    def __init__(self, hub: Hub, root: Path | None = None, settle: float = 1.0) -> None:
        self.hub = hub
        self.root = Path(root or hub.settings.drop_dir)
        self.settle = settle
        self._sizes: dict[Path, int] = {}

    def partners(self) -> list[Partner]:
        return [p for p in self.hub.partners.values() if p.delivery == "file"]

    def inbox(self, partner: Partner) -> Path:
        path = self.root / partner.id / "in"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def outbox(self, partner: Partner) -> Path:
        path = self.root / partner.id / "out"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- ingress -----------------------------------------------------------------------------------
    def _ready(self, path: Path) -> bool:
        if path.name.startswith(".") or path.suffix != ".csv":
            return False
        stat = path.stat()
        previous = self._sizes.get(path)
        self._sizes[path] = stat.st_size
        return previous == stat.st_size and time.time() - stat.st_mtime >= self.settle

    def scan(self) -> int:
        """Take every complete file from every partner's drop directory; returns files taken."""
        taken = 0
        for partner in self.partners():
            for path in sorted(self.inbox(partner).glob("*.csv")):
                if self._ready(path):
                    self.ingest(partner, path)
                    self._sizes.pop(path, None)
                    taken += 1
        return taken

    def ingest(self, partner: Partner, path: Path) -> tuple[int, int]:
        """Feed each record of one file through ingress; answer refused ones; file it away."""
        data = path.read_bytes()
        adapter = self.hub.adapter(partner.format)
        accepted, refused = 0, []
        records = adapter.split(data) if data.strip() else []
        if not records:
            refused.append((1, data, Refusal("malformed", "The file has no record")))
        for line, record in records:
            try:
                ingress.accept(self.hub, partner, record, adapter.media_type)
                accepted += 1
            except Refusal as refusal:
                refused.append((line, record, refusal))
        if refused:
            self._answer_refusals(partner, path.name, refused)
        done = self.inbox(partner) / "processed"
        done.mkdir(exist_ok=True)
        target = done / path.name
        if target.exists():
            target = done / f"{path.stem}.{int(time.time() * 1000)}{path.suffix}"
        os.replace(path, target)
        log.info("file_drop.ingested", partner=partner.id, file=path.name, accepted=accepted, refused=len(refused))
        return accepted, len(refused)

    def _answer_refusals(self, partner: Partner, filename: str, refused: list[tuple[int, bytes, Refusal]]) -> None:
        adapter = self.hub.adapter(partner.format)
        version = partner.version_for("administration.rueckweisung.0010", self.hub.registry.versions("administration.rueckweisung.0010", partner.format))
        records = []
        for line, record, refusal in refused:
            try:
                reference = adapter.peek_header(record).get("message_uuid")
                uuid.UUID(str(reference))
            except (Refusal, ValueError, TypeError, IndexError):
                reference = str(uuid.UUID(int=0))  # the record names no usable UUID
            findings = [
                # lines in the single-record file are 2; the partner needs the line of its own file
                {"message": f.message[:4000], "location": f"{filename} line {line}" + (f", column {f.column}" if f.column else "")}
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
        out = self.outbox(partner) / f"rueckweisung_{Path(filename).stem}_{int(time.time() * 1000)}.csv"
        atomic_write(out, adapter.join(records))

    # -- egress ------------------------------------------------------------------------------------
    def deliver(self) -> int:
        """Write pending deliveries of file partners as batch files; returns deliveries written."""
        written = 0
        for partner in self.partners():
            with db.read(self.hub.engine) as conn:
                rows = conn.execute(
                    sa.select(deliveries.c.id, deliveries.c.message_type, deliveries.c.version, deliveries.c.body)
                    .where(deliveries.c.recipient == partner.id, deliveries.c.status == "pending")
                    .order_by(deliveries.c.id)
                    .limit(5000)
                ).all()
            groups: dict[tuple[str, str], list] = {}
            for row in rows:
                groups.setdefault((row.message_type, row.version), []).append(row)
            adapter = self.hub.adapter(partner.format)
            for (message_type, _version), group in groups.items():
                # named after its first delivery: a crash before the acks below rewrites the same file
                out = self.outbox(partner) / f"{message_type}_{group[0].id}.csv"
                atomic_write(out, adapter.join([r.body for r in group]))
                with db.write(self.hub.engine) as conn:
                    for row in group:
                        message_store.acknowledge(conn, partner, row.id)
                    audit(conn, "hub", "file-written", partner=partner.id, file=out.name, deliveries=len(group))
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

"""Group commit: the writes of many concurrent callers in one transaction.

Under load, HTTP accepts are many small transactions that each need the database's single write lock
(SQLite) or a commit and its round trips (PostgreSQL). Forty request threads queueing for one lock
also form a convoy behind the GIL: each hand-over waits for a thread switch, and throughput collapses
to a few hundred accepts a second however fast each one is. Here the callers hand their write to one
writer thread per database, which commits whatever has queued up meanwhile in ONE transaction and
then answers each caller. Alone, a write is committed at once; under load the batches grow by
themselves. Each write runs in a savepoint, so one that fails (a resend meeting the unique key)
fails alone; if the batch cannot commit, every write is tried again on its own. That algorithm is
the batch template's (`hub.store.batch`), shared with the queue consumers; here it runs callers'
writes and answers their futures.

A caller that already holds the write lock (nested use) runs its write directly: waiting for the
writer thread would wait for itself.

Each group's transaction runs under `db.deadline(HUB_DB_REQUEST_TIMEOUT)`: a database that stops
answering fails the group (an outage) instead of stalling the writer for good. A caller that gives up
waiting (the HTTP accept path at its deadline) cancels its future; a write still queued then is never
run, so the caller knows it was not stored. Once the writer has taken a write into a group, it can no
longer be cancelled.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from hub.store import db
from hub.store import unit_of_work
from hub.store.batch import DONE, Batch, Job

log = structlog.get_logger("hub.group_commit")

T = TypeVar("T")
Work = Callable[[Connection], Any]


@dataclass(eq=False)
class _Write(Job[Work]):
    """A caller's write and the future its caller waits on."""

    future: Future


class GroupCommit(Batch[_Write]):
    def __init__(self, engine: Engine, max_batch: int = 128) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[Work, Future] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def run(self, work: Callable[[Connection], T]) -> T:
        """Run `work(conn)` in a committed transaction shared with other callers; its result or its exception."""
        if db.holds_write_lock(self.engine):
            with db.write(self.engine) as conn, unit_of_work.collecting(conn):
                return work(conn)
        return self.submit(work).result()

    def submit(self, work: Callable[[Connection], T]) -> Future:
        """Queue `work` for the next group; the future holds its result (await it with asyncio.wrap_future)."""
        self._ensure_thread()
        future: Future = Future()
        self._queue.put((work, future))
        return future

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(5)
            self._thread = None

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._start_lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._loop, name="group-commit", daemon=True)
                    self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            batch = [_Write(*job)] if _claim(job) else []
            while len(batch) < self.max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    if batch:
                        self._commit(batch)
                    return
                if _claim(job):
                    batch.append(_Write(*job))
            if batch:
                self._commit(batch)

    def _commit(self, batch: list[_Write]) -> None:
        """Commit the group (`Batch.decide`), then answer each caller: its result or its exception."""
        for write in self.decide(batch):
            if write.outcome == DONE:
                write.future.set_result(write.value)
            else:
                write.future.set_exception(write.exception)  # type: ignore[arg-type]

    # -- the batch template's methods ------------------------------------------------------------------
    def handle(self, conn: Connection, job: _Write) -> Any:
        return job.item(conn)

    @contextmanager
    def transaction(self, jobs: list[_Write], prepared: Any) -> Iterator[Connection]:
        with db.request_deadline(), db.write(self.engine) as conn, unit_of_work.collecting(conn):
            yield conn

    def fell_back(self, jobs: list[_Write], exc: BaseException, error: str) -> None:
        # typically a resend meeting the unique key: normal, so not a warning
        level = log.info if isinstance(exc, IntegrityError) else log.warning
        level("group commit failed as a whole; committing its writes one by one", size=len(jobs), error=repr(exc).splitlines()[0])


def _claim(job: tuple[Work, Future]) -> bool:
    """True if the job's caller still waits: its future is now running (no longer cancellable).
    False for a cancelled job, which is dropped unrun -- its caller was told it was not stored."""
    return job[1].set_running_or_notify_cancel()

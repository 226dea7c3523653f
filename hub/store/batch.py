"""A batch of work in one transaction: the algorithm every batching consumer of the hub shares.

The embedded queue, the AMQP consumer and the group commit of accepts all treat a batch alike. Each
item's work runs in a savepoint of ONE transaction, so an item costs its work and not a commit; an
item that fails is rolled back to its savepoint alone and the others commit. If the transaction fails
as a whole (its read-ahead, the write of its collected rows, its commit), every item is tried again
in a transaction of its own, so one bad item never holds back the rest. An item whose last allowed
attempt has failed is buried instead (the dead letters), in its savepoint too; a burial that fails
leaves the item to be buried later. And a failure is told apart: the database not answering (an
outage) is nobody's attempt, to be retried later without counting; anything else is the item's.

`Batch` owns that algorithm (`decide`); a subclass supplies the template methods, the way kombu's
virtual transports supply `Channel._get/_put/_purge` to a base that owns the rest. Only `handle` (the
work of one item) is required; the others default to doing nothing:

- `prepare` (work done ahead, outside the transaction) and `still_to_do` (what of it still holds);
- `transaction` (the transaction itself), `prefetch` (the batch's read-ahead), `usable` (whether the
  transaction can go on after an item);
- `burial` and `bury` (whether an item is to be buried instead of handled, and how);
- `done` and `failed` (the ack and the nack of a queue that lives in the same database);
- `outage` (the database did not answer), `fell_back` (the batch failed as a whole; a log line).

What an item came to is its `Job`'s outcome once `decide` returns; telling a broker or a caller about it
is the subclass's business.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy.engine import Connection, Engine

from hub import errors
from hub.store import db
from hub.store import unit_of_work

log = structlog.get_logger("hub.store.batch")

#: the outcomes of a job: its work committed; its attempt failed (it counts); it was buried; its
#: burial failed (it must come back to be buried); the database did not answer (nobody's attempt)
DONE, FAILED, BURIED, UNBURIED, OUTAGE = "done", "failed", "buried", "unburied", "outage"
#: outcomes whose failure is the item's own (a `Job` with one of them has an `exception`)
FAILURES = (FAILED, UNBURIED)

T = TypeVar("T")


@dataclass(eq=False)
class Job(Generic[T]):
    """One item of a batch and what it came to (None until `Batch.decide` decided it)."""

    item: T
    outcome: str | None = field(default=None, kw_only=True)
    #: what `handle` returned (DONE)
    value: Any = field(default=None, kw_only=True)
    #: why it failed (FAILED, UNBURIED) or why the database was taken for away (OUTAGE)
    exception: BaseException | None = field(default=None, kw_only=True)
    _error: str | None = field(default=None, kw_only=True, repr=False)

    @property
    def error(self) -> str | None:
        """The failure in one line without personal data (`hub.errors.describe`), for logs and headers."""
        if self._error is None and self.exception is not None:
            self._error = errors.describe(self.exception)
        return self._error

    def set_outcome(self, outcome: str, value: Any = None, exception: BaseException | None = None, error: str | None = None) -> None:
        self.outcome, self.value, self.exception, self._error = outcome, value, exception, error


J = TypeVar("J", bound=Job[Any])


class Outage(Exception):
    """The database did not answer while an item ran: the batch stops; nobody's attempt."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(repr(cause))
        self.cause = cause


class _Spoiled(Exception):
    """An item left the transaction unusable (`Batch.usable`): it is decided, the rest is redone without it."""

    def __init__(self, job: Job[Any], outcome: str, exception: BaseException | None) -> None:
        if exception is None:  # its work swallowed the failed statement: the item still failed
            outcome = UNBURIED if outcome == BURIED else FAILED
        super().__init__("a statement failed and aborted the transaction")
        self.job, self.outcome, self.exception = job, outcome, exception or self
        self.error = None if exception is not None else str(self)


class Batch(ABC, Generic[J]):
    """The algorithm of the module docstring over jobs `J`; subclasses supply the template methods."""

    engine: Engine
    #: fields of this batch's log lines (a queue's name)
    log_fields: Mapping[str, Any] = {}

    def decide(self, jobs: list[J]) -> list[J]:
        """Decide every job: all in one transaction, or, if that fails as a whole, one per transaction.

        Every job has its outcome when this returns, unless `outage` raised: then the jobs decided
        before keep theirs and the others are undecided (or OUTAGE)."""
        if jobs:
            self.commit(jobs, self.prepare(jobs))
        return jobs

    def commit(self, jobs: list[J], prepared: Any) -> list[J]:
        """`decide` with the work `prepare` did ahead of the transaction."""
        culprit: Job[Any] | None = None
        try:
            self._together(jobs, prepared)
            return jobs
        except _Spoiled as spoiled:  # its item is decided; the batch is redone without it
            culprit = spoiled.job
            culprit.set_outcome(spoiled.outcome, exception=spoiled.exception, error=spoiled.error)
            self.failed(None, spoiled.job, spoiled.exception)
            failure: BaseException = spoiled
            error = culprit.error or ""
        except Exception as exc:  # noqa: BLE001 - the read-ahead, the collected rows, the commit, or the database
            failure = exc.cause if isinstance(exc, Outage) else exc
            if isinstance(exc, Outage) or self.is_outage(failure):
                for job in jobs:
                    job.set_outcome(OUTAGE, exception=failure)
                self.outage(jobs, failure)
                return jobs
            if len(jobs) == 1:  # nothing to tell apart: the failure is the item's
                job = jobs[0]
                job.set_outcome(UNBURIED if self.burial(job) is not None else FAILED, exception=failure)
                self.failed(None, job, failure)
                return jobs
            error = errors.describe(failure)
        others = [job for job in jobs if job is not culprit]
        if others:
            self.fell_back(jobs, failure, error)
            for job in others:
                self.decide([job])
        return jobs

    def _together(self, jobs: list[J], prepared: Any) -> None:
        """All jobs in one transaction, a (lazy) savepoint each; their outcomes hold once it committed."""
        decided: list[tuple[J, tuple[str, Any, BaseException | None]]] = []
        with self.transaction(jobs, prepared) as conn:
            todo = self.still_to_do(conn, jobs, prepared)
            ready = [job for job in todo if self.burial(job) is None]
            if ready:
                self.prefetch(conn, ready)
            if not self.usable(conn):
                raise RuntimeError("the batch's read-ahead left the transaction aborted")
            for job in todo:
                outcome = self._one(conn, job)
                if not self.usable(conn):
                    raise _Spoiled(job, outcome[0], outcome[2])
                decided.append((job, outcome))
        if todo is not jobs:  # the rest was done ahead and committed with the transaction
            left = {id(job) for job in todo}
            for job in jobs:
                if id(job) not in left:
                    job.set_outcome(DONE)
        for job, (outcome, value, exception) in decided:
            job.set_outcome(outcome, value, exception)

    def _one(self, conn: Connection, job: J) -> tuple[str, Any, BaseException | None]:
        """Bury or handle one job in a savepoint of `conn`: (outcome, value, exception)."""
        reason = self.burial(job)
        try:
            with unit_of_work.savepoint(conn):
                if reason is not None:
                    self.bury(conn, job, reason)
                    return BURIED, None, None
                value = self.handle(conn, job)
                self.done(conn, job)
            return DONE, value, None
        except Exception as exc:  # noqa: BLE001 - the item's failure, unless the database is away
            if self.is_outage(exc):
                raise Outage(exc) from exc
            self.failed(conn, job, exc)
            return (FAILED if reason is None else UNBURIED), None, exc

    # -- template methods ------------------------------------------------------------------------
    @abstractmethod
    def handle(self, conn: Connection, job: J) -> Any:
        """The work of one item, in its savepoint; raise to fail it. Its return value is the job's `value`."""

    def prepare(self, jobs: list[J]) -> Any:
        """Work done ahead of the transaction (passed to `transaction` and `still_to_do`); None: nothing."""
        return None

    @contextmanager
    def transaction(self, jobs: list[J], prepared: Any) -> Iterator[Connection]:
        """The batch's writing transaction, its rows collected in a unit of work."""
        with db.write(self.engine) as conn, unit_of_work.collecting(conn):
            yield conn

    def still_to_do(self, conn: Connection, jobs: list[J], prepared: Any) -> list[J]:
        """The jobs the transaction must run; the others were done by `prepare` and commit as DONE."""
        return jobs

    def prefetch(self, conn: Connection, jobs: list[J]) -> None:
        """Read in one statement what each job (not to be buried) would read alone."""

    def usable(self, conn: Connection) -> bool:
        """False when the transaction refuses every further statement (PostgreSQL after a failed
        statement outside a savepoint): the item just run is decided and the batch redone without it."""
        return True

    def burial(self, job: J) -> str | None:
        """Why the job is to be buried instead of handled; None while it may be handled."""
        return None

    def bury(self, conn: Connection, job: J, reason: str) -> None:
        """Give the item up for good, in its savepoint (only called where `burial` gave a reason)."""
        raise NotImplementedError(f"{type(self).__name__} buries nothing")

    def done(self, conn: Connection, job: J) -> None:
        """After the item's work, in its savepoint: e.g. ack it where the queue is a table."""

    def failed(self, conn: Connection | None, job: J, exc: BaseException) -> None:
        """Record the item's failed attempt: in `conn`, the batch's transaction after the item's
        savepoint was rolled back; or, with None, after its own transaction failed."""

    def outage(self, jobs: list[J], exc: BaseException) -> None:
        """The database did not answer for `jobs` (now OUTAGE): raise to stop the whole batch."""

    def is_outage(self, exc: BaseException) -> bool:
        """A failure that is the database's, not the item's (`hub.store.db.is_outage`)."""
        return db.is_outage(self.engine, exc)

    def fell_back(self, jobs: list[J], exc: BaseException, error: str) -> None:
        """Say that the batch failed as a whole and its items are processed one by one."""
        log.warning("batch failed as a whole; processing its items one by one", size=len(jobs), error=error, **self.log_fields)

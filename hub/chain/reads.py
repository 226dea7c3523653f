"""What a batch read of the chain, remembered for the rest of the batch.

A consumer processes a batch of items in one transaction, and reports on one link come in runs (a
provider's monthly reports, a stream of feedbacks): each would ask again for the same link and its
open deadlines and tasks. While no item of the batch wrote at once (`UnitOfWork.reads_current`),
the database holds what it held when the batch first asked -- the batch's own rows wait in the unit
of work, and the readers add those themselves -- so the first answer is kept on the unit.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.engine import Connection

from hub.store import unit_of_work

T = TypeVar("T")


@dataclass
class ChainReads:
    rows: dict[Hashable, Any] = field(default_factory=dict)

    # database reads only: a failed item's savepoint leaves them true (nothing to rewind)
    def snapshot(self) -> None:
        return None

    def restore(self, snapshot: None) -> None:
        return None


def cached(conn: Connection, key: Hashable, read: Callable[[], T]) -> T:
    """`read()`, answered from the batch's earlier read of `key` while nothing was written at once."""
    unit = unit_of_work.current(conn)
    if unit is None or not unit.reads_current():
        return read()
    rows = unit.extension(ChainReads).rows
    if key not in rows:
        rows[key] = read()
    return rows[key]

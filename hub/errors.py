"""What the hub says about its own failures: which ones a retry may cure, and one line for each.

A failure while processing a message is either passing (the database or broker away, a lock timeout:
the same work may succeed in a moment) or permanent (the same input fails the same way every time).
A passing failure is retried; a permanent one is answered at once, since retrying it only delays the
answer the sender needs and fills the dead letter channel with messages nobody can revive.

The line describing a failure goes to the message history, the dead letter, logs and sometimes the
sender. It must not carry personal data, so it keeps the exception's type and the first line of its
message, drops what SQLAlchemy appends (the statement and its parameters) and pydantic's input values,
and replaces quoted values (`'Jürgen'`, `"01067"`) with an ellipsis.
"""

from __future__ import annotations

import re

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError


#: quoted text in an exception message: usually a value of the message being processed
_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")
#: what SQLAlchemy appends to a driver's message
_SQLA_TAIL = re.compile(r"\s*\((Background on this error|sqlite3|psycopg)[^)]*\).*$|\s*\[SQL:.*$", re.DOTALL)
MAX_LENGTH = 300


class NeedsWriter(Exception):
    """A read-only pass met a statement that writes at once: do this item under the write lock
    (raised by `hub.store.unit_of_work.read_only`)."""


def passing(exc: BaseException) -> bool:
    """True for a failure that a later attempt may not meet: the database, the broker or the
    network (SQLAlchemy's errors, OS errors, timeouts), or a read-only pass that needs the write lock."""
    return isinstance(exc, (SQLAlchemyError, OSError, TimeoutError, NeedsWriter))


def describe(exc: BaseException) -> str:
    """`Type: first line of the message`, without statements, parameters or quoted values."""
    name = type(exc).__name__
    if isinstance(exc, ValidationError):
        places = sorted({".".join(map(str, e["loc"])) for e in exc.errors()})
        text = f"{exc.error_count()} validation error(s) at {', '.join(places[:5])}"
    elif isinstance(exc, SQLAlchemyError) and getattr(exc, "orig", None) is not None:
        name = f"{name} ({type(exc.orig).__name__})"
        text = str(exc.orig)
    else:
        text = str(exc)
    line = _SQLA_TAIL.sub("", text.strip().splitlines()[0] if text.strip() else "")
    line = _QUOTED.sub("'…'", line)
    if len(line) > MAX_LENGTH:
        line = line[: MAX_LENGTH - 1] + "…"
    return f"{name}: {line}" if line else name

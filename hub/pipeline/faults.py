"""Fault injection for the crash and fault tests, kept out of the pipeline's hot path.

`HUB_FAULT_PIPELINE_DELAY` (seconds, default 0: off) holds each message's transaction open for
that long before the pipeline runs, widening the window in which a test's kill -9 lands in the
middle of a batch. The consumer is wrapped only where it is configured; `STAGES` never changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])


def delayed(handle_item: F, seconds: float) -> F:
    """`handle_item`, first sleeping `seconds` in its transaction; itself where `seconds` is 0."""
    if seconds <= 0:
        return handle_item

    def slow(*args: object) -> object:
        time.sleep(seconds)
        return handle_item(*args)

    return slow  # type: ignore[return-value]

"""Wait for something a worker does, with a deadline: never an unbounded loop, never a bare sleep."""

import reprlib
import time
from collections.abc import Callable
from typing import Literal, TypeVar

# A TypeVar, not PEP 695's `def wait_until[T]`: every file of the project compiles on any Python 3, whatever the
# interpreter a reviewer's or an editor's tooling parses it with (the project itself runs on 3.12+).
T = TypeVar("T")


def wait_until(  # noqa: UP047 (see T above)
    # The falsy "not yet" values a check returns (None, False) are not what it returns once it passes.
    condition: Callable[[], T | Literal[False] | None],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str | Callable[[], str] = "",
) -> T:
    """Return the first truthy value of ``condition()``; fail the test after ``timeout`` seconds.

    The failure says what was awaited and what the last check saw: ``what`` may be a callable, called then, to
    describe the state (events seen, counts reached).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            awaited = (what() if callable(what) else what) or repr(condition)
            raise AssertionError(
                f"timed out after {timeout} s waiting for {awaited}; the last check returned {reprlib.repr(value)}"
            )
        time.sleep(interval)


def settles_at(read: Callable[[], int], expected: int, timeout: float = 10) -> int:
    """``read()`` once it returns ``expected``, or its last value after ``timeout`` s: for a count that moves a moment
    after what the test waited for (a worker acks after the effect; RabbitMQ's counts are statistics, 0.1 s behind)."""
    deadline = time.monotonic() + timeout
    while (value := read()) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return value

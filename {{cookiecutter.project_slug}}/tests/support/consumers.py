"""Pause an in-process worker's consumption of one queue, so a test can look at messages waiting in it."""

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from tests.support.waiting import wait_until


def not_waiting_on(channel, queue: str) -> bool:
    return channel._waiting_on != queue


def still_not_waiting_after(seconds: float, channel: Any, queue: str) -> bool:
    """A second look, ``seconds`` later: the first may have come between two waits."""
    time.sleep(seconds)
    return not_waiting_on(channel, queue)


@contextlib.contextmanager
def paused(worker, queue: str) -> Iterator[None]:
    """No message of ``queue`` is taken while the block runs; consumption resumes after it."""
    consumer = worker.consumer
    channel = consumer.task_consumer.channel
    # The wait below reads what the project's atomic claim waits on; kombu's BRPOP does not say.
    assert channel.claims_atomically(), channel.atomic_claim_off_because()
    consumer.cancel_task_queue(queue)
    try:
        wait_until(
            lambda: queue not in channel.active_queues, timeout=10, what=f"the worker to stop consuming {queue}"
        )
        # A BLMOVE on the queue sent before the cancel may still take a message: wait until none is in flight.
        # The project's transport names the queue it waits on (patches/kombu.py); a wait is sent microseconds
        # after its queue is chosen, so a second look 0.1 s later closes the gap between the two.
        wait_until(
            lambda: not_waiting_on(channel, queue) and still_not_waiting_after(0.1, channel, queue),
            timeout=10,
            what=lambda: f"the worker's wait on {queue} to end (waiting on {channel._waiting_on!r})",
        )
        yield
    finally:
        consumer.add_task_queue(queue)

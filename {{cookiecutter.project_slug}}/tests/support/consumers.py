"""Pause an in-process worker's consumption of one queue, so a test can look at messages waiting in it."""

import contextlib
import time
from collections.abc import Iterator

from tests.support.waiting import wait_until


@contextlib.contextmanager
def paused(worker, queue: str) -> Iterator[None]:
    """No message of ``queue`` is taken while the block runs; consumption resumes after it."""
    consumer = worker.consumer
    channel = consumer.task_consumer.channel
    consumer.cancel_task_queue(queue)
    try:
        wait_until(
            lambda: queue not in channel.active_queues, timeout=10, what=f"the worker to stop consuming {queue}"
        )
        # A wait for a message already sent to Redis ends within brpop_timeout: let it end empty.
        time.sleep(channel.brpop_timeout + 0.5)
        yield
    finally:
        consumer.add_task_queue(queue)

"""Pause an in-process worker's consumption of one queue, so a test can look at messages waiting in it."""

{% if cookiecutter.broker == "rabbitmq" -%}
import contextlib
from collections.abc import Iterator

from config.celery_app import app as celery_app
from tests.support.waiting import wait_until


@contextlib.contextmanager
def paused(worker, queue: str) -> Iterator[None]:
    """No message of ``queue`` is taken while the block runs; consumption resumes after it.

    Asked of the worker by a broadcast its own event loop handles (the test thread must not use the worker's AMQP
    connection). The worker replies at once and cancels on its loop's next turn: once the queue has left its task
    consumer, RabbitMQ has acknowledged the basic.cancel and delivers that queue to it no more.
    """
    replies = celery_app.control.cancel_consumer(queue, destination=[worker.hostname], reply=True, timeout=10)
    assert replies, f"{worker.hostname} did not answer the cancel of {queue} within 10 s"
    try:
        wait_until(
            lambda: queue not in {consumed.name for consumed in worker.consumer.task_consumer.queues},
            timeout=10,
            what=f"{worker.hostname} to stop consuming {queue}",
        )
        yield
    finally:
        celery_app.control.add_consumer(queue, destination=[worker.hostname], reply=True, timeout=10)
{%- else -%}
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
{%- endif %}

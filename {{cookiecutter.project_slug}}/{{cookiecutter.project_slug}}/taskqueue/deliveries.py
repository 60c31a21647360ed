"""A bound on how many times one message is run, so a task that kills its worker is not delivered forever.

Late acks with reject-on-worker-lost deliver a task again when its process dies. A task that
always kills its process (a crashing C extension, one input that exhausts memory, ``os._exit``)
would then come back forever, killing a pool process each time. So each redelivery of a message
is counted in Redis before the task body starts; past the task's ``max_deliveries`` runs the task
is failed instead of run: it becomes a dead letter, is logged, and is acked.

Only redeliveries are counted (kombu marks a message it puts back on a queue as redelivered),
so the first run of a message, nearly every run, costs no Redis round trip.
"""

import logging
import re

from celery import Task
from django.core.cache import cache
from django_redis import get_redis_connection
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# Long enough to span redeliveries that wait out the visibility timeout (an hour by default).
COUNT_TTL = 24 * 60 * 60


# RabbitMQ's native delayed delivery (Celery 5.5+) routes a countdown's message by "<28 binary digits>.<routing key>".
DELAY_PREFIX = re.compile(r"^(?:[01]\.){28}")


def queue_of(delivery_info: dict | None) -> str:
    """The queue a message was routed to: its routing key, without a delayed message's prefix (RabbitMQ)."""
    return DELAY_PREFIX.sub("", (delivery_info or {}).get("routing_key") or "")


class PoisonMessageError(Exception):
    """A message that started more runs than its task allows: it is recorded as failed, not run again."""


def _redelivered(task: Task) -> bool:
    return bool((task.request.delivery_info or {}).get("redelivered"))


def _count_key(task: Task) -> str:
    # A retry is a new message with the same task id: it starts its own count.
    return cache.make_key(f"deliveries:{task.request.id}:{task.request.retries or 0}")


def count_delivery(task: Task) -> None:
    """Count this run of the current message; raise PoisonMessageError if there were too many."""
    if not _redelivered(task):
        return
    try:
        with get_redis_connection("default").pipeline() as pipe:
            redeliveries, _ = pipe.incr(_count_key(task)).expire(_count_key(task), COUNT_TTL).execute()
    except RedisError:
        # The bound is a safety net: without Redis, run the task rather than fail it.
        logger.warning("Could not count the deliveries of %s[%s]; running it", task.name, task.request.id)
        return
    runs = redeliveries + 1
    if runs > task.max_deliveries:
        raise PoisonMessageError(
            f"{task.name}[{task.request.id}] was delivered {runs} times and no run finished (its process died): "
            f"more than max_deliveries={task.max_deliveries}, so it is not run again"
        )


def forget_deliveries(task: Task) -> None:
    """The run finished (or failed cleanly): its message will not come back, so drop its count."""
    if not _redelivered(task):
        return
    try:
        get_redis_connection("default").delete(_count_key(task))
    except RedisError:
        logger.warning("Could not clear the delivery count of %s[%s]; it expires", task.name, task.request.id)

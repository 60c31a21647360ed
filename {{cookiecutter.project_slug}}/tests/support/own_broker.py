{% if cookiecutter.broker == "rabbitmq" -%}
"""A broker of a test's own for the worker processes it starts: a RabbitMQ virtual host with the project's queues,
and a Redis database for their state (REDIS_URL: task metrics, the cache, the counts test tasks keep).

The in-process test workers consume the session's virtual host; a worker process started on its own virtual host
takes none of their messages, nor they its. ``env`` is what such a process needs (REDIS_URL, CELERY_BROKER_URL).
"""

import contextlib
import subprocess
import time

import redis
from django.conf import settings
from kombu import Connection

from config import broker_rabbitmq
from tools.rabbitmq_server import RabbitMQServer


class OwnBroker:
    """``vhost``: an existing virtual host to read (the session's), kept at close; else a new one of the test's own."""

    def __init__(self, node: RabbitMQServer, redis_url: str, vhost: str = ""):
        self.node = node
        self.owned = not vhost
        self.name = vhost or f"own-{time.monotonic_ns()}"
        if self.owned:
            self.url = node.add_vhost(self.name)
            with Connection(self.url) as connection:
                broker_rabbitmq.declare(connection, settings.CELERY_TASK_QUEUES)
        else:
            self.url = f"amqp://guest:guest@127.0.0.1:{node.port}/{vhost}"  # pragma: allowlist secret
        self.redis_url = redis_url
        self.client = redis.Redis.from_url(redis_url)
        self.client.flushdb()
        self.env = {"REDIS_URL": redis_url, "CELERY_BROKER_URL": self.url}

    def _counts(self) -> dict[str, tuple[int, int]]:
        return self.node.queue_counts(self.name)

    def ready(self, queue: str) -> int:
        """Messages waiting in ``queue`` for a consumer."""
        return self._counts().get(queue, (0, 0))[0]

    def unacked(self) -> int:
        """Messages delivered to a consumer and not yet acknowledged, in every queue."""
        return sum(unacked for _, unacked in self._counts().values())

    def held(self) -> int:
        """The task messages RabbitMQ holds here: waiting, delivered and unacked, waiting out a countdown in a delay
        queue (celery_delayed_*), or dead-lettered. Not the workers' broadcast and event queues."""
        task_queues = {queue.name for queue in settings.CELERY_TASK_QUEUES} | {broker_rabbitmq.DEAD_LETTER_QUEUE.name}
        return sum(
            ready + unacked
            for name, (ready, unacked) in self._counts().items()
            if name in task_queues or name.startswith("celery_delayed_")
        )

    def counts(self) -> dict[str, tuple[int, int]]:
        """For a failure message: every queue's (ready, unacknowledged)."""
        return self._counts()

    def close(self) -> None:
        self.client.flushdb()
        self.client.close()
        if self.owned:
            # The node stops with the session anyway.
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.node.delete_vhost(self.name)
{%- else -%}
"""A broker of a test's own for the worker processes it starts: a Redis database of the session's server, which is
also their REDIS_URL (the task metrics, the cache, the counts test tasks keep).

The in-process test workers consume the session's database; a worker process started on its own database takes
none of their messages, nor they its. ``env`` is what such a process needs (REDIS_URL).
"""

import redis


class OwnBroker:
    def __init__(self, redis_url: str):
        self.url = self.redis_url = redis_url
        self.client = redis.Redis.from_url(redis_url)
        self.client.flushdb()
        self.env = {"REDIS_URL": redis_url}

    def ready(self, queue: str) -> int:
        """Messages waiting in ``queue`` for a consumer."""
        return self.client.llen(queue)

    def unacked(self) -> int:
        """Messages a worker took and has not acknowledged (kombu's unacked hash)."""
        return self.client.hlen("unacked")

    def held(self) -> int:
        """Every message the database holds: queued, or taken and not yet acknowledged."""
        return sum(self.ready(queue) for queue in ("default", "io", "cpu")) + self.unacked()

    def close(self) -> None:
        self.client.flushdb()
        self.client.close()
{%- endif %}

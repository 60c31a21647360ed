{% if cookiecutter.broker == "rabbitmq" -%}
"""The scenario's own broker, a RabbitMQ node, and its own Redis (REDIS_URL: the cache, locks and task state):
restartable, stallable, and sent to without touching the session's."""

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from kombu import Connection, Producer

from config import broker_rabbitmq
from tests.reliability.sending import Sending
from tools.rabbitmq_server import RabbitMQServer
from tools.redis_server import RedisServer

AMQP_ERRORS = Connection("amqp://").connection_errors + Connection("amqp://").channel_errors
# Seconds between the two readings settled() takes (RabbitMQ's unacked counts are statistics, a moment behind).
SETTLE_CONFIRM = 1.0


class Broker(Sending):
    """A RabbitMQ node with the project's quorum queues declared, a Redis beside it, and a producer for them."""

    # Which shape of broker, for the scenario lines.
    shape = "rabbitmq"
    # What a read of it raises while it restarts or stalls: refused or dropped connections, rabbitmqctl's failure.
    errors: tuple[type[BaseException], ...] = (OSError, RuntimeError, *AMQP_ERRORS)

    def __init__(self) -> None:
        self.node = RabbitMQServer().start()
        self.redis = RedisServer().start()
        with Connection(self.node.url) as connection:
            broker_rabbitmq.declare(connection, settings.CELERY_TASK_QUEUES)

    @property
    def env(self) -> dict[str, str]:
        """What a worker of this broker needs besides REDIS_URL."""
        return {"CELERY_BROKER_URL": self.node.url}

    @property
    def url(self) -> str:
        return self.node.url

    @property
    def redis_url(self) -> str:
        """REDIS_URL of the scenario's processes: a redis-server of its own."""
        return self.redis.url

    def push_raw(
        self, queue: str, message: bytes, headers: dict | None = None, content_type: str = "application/json"
    ) -> None:
        """Publish bytes to a queue as they are, the way a buggy or foreign producer could."""
        with Connection(self.url) as connection:
            Producer(connection).publish(
                message,
                exchange=broker_rabbitmq.TASKS_EXCHANGE,
                routing_key=queue,
                content_type=content_type,
                content_encoding="utf-8",
                headers=headers or {},
            )

    def _counts(self) -> dict[str, tuple[int, int]]:
        return self.node.queue_counts()

    def queued(self, queue: str) -> int:
        """Messages ready in ``queue``: RabbitMQ's own count (a passive declare), not a statistic."""
        with Connection(self.url) as connection, connection.channel() as channel:
            return channel.queue_declare(queue=queue, passive=True).message_count

    def unacked(self) -> int:
        """Messages delivered to a consumer and not acked yet, in every queue (statistics, 0.1 s behind)."""
        return sum(unacked for _, unacked in self._counts().values())

    def held(self, queue: str) -> int:
        """Messages RabbitMQ still holds for ``queue``: ready or delivered and unacked, and any waiting out a countdown
        (a retry's) in the delay queues, which are every queue's (statistics, 0.1 s behind)."""
        counts = self._counts()
        ready, unacked = counts.get(queue, (0, 0))
        delayed = sum(r + u for name, (r, u) in counts.items() if name.startswith("celery_delayed_"))
        return ready + unacked + delayed

    def settled(self, queue: str) -> bool:
        """No message of ``queue`` left in RabbitMQ: every one was acked, or dead-lettered.

        Ready counts are exact (a passive declare per queue, the delay queues too, where a retry's countdown waits);
        unacked ones are statistics, 0.1 s behind and more on a loaded machine, and a message moving from a delay queue
        to its queue is briefly in neither: it counts as settled only if all of them still read 0 a second later.
        """
        if not self._quiet(queue):
            return False
        time.sleep(SETTLE_CONFIRM)
        return self._quiet(queue)

    def _quiet(self, queue: str) -> bool:
        counts = self._counts()
        watched = [queue, *(name for name in counts if name.startswith("celery_delayed_"))]
        return all(self.queued(name) == 0 and counts.get(name, (0, 0))[1] == 0 for name in watched)

    def restart(self) -> None:
        self.node.restart()

    def _vm_pid(self) -> int:
        """The node's Erlang VM (beam.smp), the child of the rabbitmq-server script."""
        script = self.node.server_pid()
        for entry in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == script and "beam" in stat:
                    return int(entry.name)
        raise AssertionError(f"no Erlang VM under rabbitmq-server (pid {script})")

    @contextlib.contextmanager
    def stalled(self) -> Iterator[None]:
        """RabbitMQ alive but answering nothing inside the block: its VM stopped (SIGSTOP), then continued."""
        pid = self._vm_pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        self.node.stop(remove_data=True)
        self.redis.stop(remove_data=True)
{%- else -%}
"""The scenario's own Redis broker: restartable, and sent to without touching the session's Redis."""

import ssl

import redis

from tests.reliability.sending import Sending
from tools.redis_server import RedisServer

# How many of a queue's messages Redis holds, read in one atomic step: queued, on a worker's claim list (taken off the
# queue by BLMOVE, not yet recorded as unacked: the project's transport, taskqueue/patches/kombu.py) and delivered
# and unacked. Read one by one, a message moving between them meanwhile could be missed, and a test would take a
# task in flight for a task done. KEYS: the queue, kombu's unacked hash, the transport's claim registry.
HELD_SCRIPT = """
local held = redis.call('LLEN', KEYS[1]) + redis.call('HLEN', KEYS[2])
for _, claim in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
    held = held + redis.call('LLEN', claim)
end
return held
"""


class Broker(Sending):
    """A redis-server with AOF and noeviction (as the compose files run it), and a producer for it.

    ``server``: one of another shape (an ACL user, TLS), not started yet; a password-less plain one by default.
    """

    # Which shape of server, for the scenario lines (tests/reliability/test_redis_shapes.py).
    shape = "plain"
    # What a read of it raises while it restarts or stalls.
    errors: tuple[type[BaseException], ...] = (redis.RedisError,)

    def __init__(self, server: RedisServer | None = None):
        self.server = (server or RedisServer()).start()
        self.client = redis.Redis.from_url(self.server.url, **self.server.client_options())
        # kombu's ssl options for a rediss:// server: the certificate verified against the test CA.
        tls = self.server.tls
        self.ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": str(tls.ca_file)} if tls else None

    @property
    def env(self) -> dict[str, str]:
        """What a worker of this broker needs besides REDIS_URL (the CA bundle of a TLS one)."""
        return {"REDIS_CA_CERTS": str(self.server.tls.ca_file)} if self.server.tls else {}

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def redis_url(self) -> str:
        """REDIS_URL of the scenario's processes: the broker's server."""
        return self.server.url

    def push_raw(self, queue: str, message: bytes) -> None:
        """Put bytes on a queue's list as they are, the way a buggy or foreign producer could."""
        self.client.lpush(queue, message)

    def queued(self, queue: str) -> int:
        return self.client.llen(queue)

    def unacked(self) -> int:
        """Messages delivered and not acked yet (kombu's ``unacked`` hash): Redis redelivers these later."""
        return self.client.hlen("unacked")

    def held(self, queue: str) -> int:
        """Messages Redis still holds for ``queue`` (queued, being claimed, unacked), counted atomically; the unacked
        count includes other queues' (kombu keeps one hash), which a scenario on one queue does not have."""
        return int(self.client.eval(HELD_SCRIPT, 3, queue, "unacked", "unacked_claims"))

    def settled(self, queue: str) -> bool:
        """No message of ``queue`` left anywhere in Redis: every one was acked, or rejected without requeue."""
        return self.held(queue) == 0

    def restart(self) -> None:
        self.server.restart()

    def stalled(self):
        """Redis alive but answering nothing inside the block (tools/redis_server.py)."""
        return self.server.stalled()

    def stop(self) -> None:
        self.client.close()
        self.server.stop(remove_data=True)
{%- endif %}

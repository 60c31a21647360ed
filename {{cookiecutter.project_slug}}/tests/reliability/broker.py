{% if cookiecutter.broker == "rabbitmq" -%}
"""The scenario's own broker, a RabbitMQ node or a virtual host of a shared one, and its own Redis (REDIS_URL: the
cache, locks and task state): sent to without touching the session's; restartable and stallable on its own node."""

import atexit
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

_shared_node: RabbitMQServer | None = None


def shared_node() -> RabbitMQServer:
    """The node this test process's scenarios share, a virtual host each: started at first use, stopped at exit."""
    global _shared_node
    if _shared_node is None or not _shared_node.running():
        _shared_node = RabbitMQServer().start()
        atexit.register(_shared_node.stop, remove_data=True)
    return _shared_node


class Broker(Sending):
    """The project's quorum queues on a RabbitMQ broker of the scenario's own, a Redis beside it, and a producer.

    ``shared``: a virtual host of its own on shared_node(), for a scenario that neither restarts nor stalls RabbitMQ (a
    node's start and stop cost 9 s and 5 CPU seconds here, for each of some 30 scenarios); else a node of its own.
    """

    # Which shape of broker, for the scenario lines.
    shape = "rabbitmq"
    # What a read of it raises while it restarts or stalls: refused or dropped connections, rabbitmqctl's failure.
    errors: tuple[type[BaseException], ...] = (OSError, RuntimeError, *AMQP_ERRORS)

    def __init__(self, shared: bool = False) -> None:
        self.shared = shared
        if shared:
            self.node = shared_node()
            self.vhost = f"scenario-{time.monotonic_ns()}"
            self._url = self.node.add_vhost(self.vhost)
        else:
            self.node = RabbitMQServer().start()
            self.vhost = "/"
            self._url = self.node.url
        self.redis = RedisServer().start()
        with Connection(self._url) as connection:
            broker_rabbitmq.declare(connection, settings.CELERY_TASK_QUEUES)

    @property
    def env(self) -> dict[str, str]:
        """What a worker of this broker needs besides REDIS_URL."""
        return {"CELERY_BROKER_URL": self._url}

    @property
    def url(self) -> str:
        return self._url

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
        return self.node.queue_counts(self.vhost)

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

    def _own_node(self) -> RabbitMQServer:
        assert not self.shared, "a virtual host of the shared node cannot be restarted or stalled: use Broker()"
        return self.node

    def restart(self) -> None:
        self._own_node().restart()

    def _vm_pid(self) -> int:
        """The node's Erlang VM (beam.smp), the child of the rabbitmq-server script."""
        script = self._own_node().server_pid()
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
        if self.shared:
            self.node.delete_vhost(self.vhost)
        else:
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

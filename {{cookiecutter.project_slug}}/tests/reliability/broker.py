"""The scenario's own Redis broker: restartable, and sent to without touching the session's Redis."""

import ssl

import redis

from config.celery_app import app as celery_app
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


class Broker:
    """A redis-server with AOF and noeviction (as the compose files run it), and a producer for it.

    ``server``: one of another shape (an ACL user, TLS), not started yet; a password-less plain one by default.
    """

    # Which shape of server, for the scenario lines (tests/reliability/test_redis_shapes.py).
    shape = "plain"

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

    def send(self, name: str, *, args: tuple | list = (), kwargs: dict | None = None, **options) -> str:
        """Send a task by name, routed as the project routes it; return its id."""
        return self.send_many(name, [args], kwargs=kwargs, **options)[0]

    def send_many(self, name: str, arguments: list[tuple | list], *, kwargs: dict | None = None, **options):
        """Send one task per item of ``arguments`` over one connection; return their ids."""
        with celery_app.connection_for_write(self.url, ssl=self.ssl) as connection:
            return [
                celery_app.send_task(name, args=args, kwargs=kwargs, connection=connection, **options).id
                for args in arguments
            ]

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

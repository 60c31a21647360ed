"""The scenario's own Redis broker: restartable, and sent to without touching the session's Redis."""

import redis

from config.celery_app import app as celery_app
from tools.redis_server import RedisServer


class Broker:
    """A redis-server with AOF and noeviction (as the compose files run it), and a producer for it."""

    def __init__(self):
        self.server = RedisServer().start()
        self.client = redis.Redis.from_url(self.server.url)

    @property
    def url(self) -> str:
        return self.server.url

    def send(self, name: str, *, args: tuple | list = (), kwargs: dict | None = None, **options) -> str:
        """Send a task by name, routed as the project routes it; return its id."""
        return self.send_many(name, [args], kwargs=kwargs, **options)[0]

    def send_many(self, name: str, arguments: list[tuple | list], *, kwargs: dict | None = None, **options):
        """Send one task per item of ``arguments`` over one connection; return their ids."""
        with celery_app.connection_for_write(self.url) as connection:
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

    def restart(self) -> None:
        self.server.restart()

    def stop(self) -> None:
        self.client.close()
        self.server.stop(remove_data=True)

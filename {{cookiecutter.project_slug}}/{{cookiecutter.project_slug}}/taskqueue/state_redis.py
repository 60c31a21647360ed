"""A redis-py client on the state Redis (REDIS_STATE_URL): the task metrics and beat's tick, kept apart from the cache.

RabbitMQ holds the queues; what the project writes itself besides the cache goes here, so ``cache.clear()`` never
deletes it (config/redis_roles.py). Queue depths are the broker's: read from RabbitMQ (taskqueue/metrics.py).
"""

import functools

import redis
from django.conf import settings

from config import redis_roles


def client() -> redis.Redis:
    return _client(settings.REDIS_STATE_URL, settings.REDIS_CA_CERTS)


@functools.cache
def _client(url: str, ca_certs: str) -> redis.Redis:
    # One pool per URL for the process's life; redis-py makes a new pool in a forked child. Timeouts as the cache's.
    tls = redis_roles.tls_options(url, ca_certs) or {}
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1.5, **tls)

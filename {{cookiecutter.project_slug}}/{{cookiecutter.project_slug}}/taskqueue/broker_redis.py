"""A redis-py client on the broker's Redis, for what reads or writes there besides kombu: queues and metrics.

The cache lives in a database of its own (config/redis_roles.py), so queue depths and the metrics that must
survive ``cache.clear()`` are read and written here, with the broker's URL, TLS options and socket timeouts.
A ``sentinel://`` broker URL is followed the way kombu follows it: the sentinels name the primary
(``master_name`` in CELERY_BROKER_TRANSPORT_OPTIONS), and the client reconnects to the new one after a failover.
"""

import functools
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.sentinel import Sentinel


def client() -> redis.Redis:
    from config.celery_app import app  # at call time: the app is configured by then

    conf = app.conf
    transport = conf.broker_transport_options or {}
    return _client(
        conf.broker_url,
        tuple(sorted((conf.broker_use_ssl or {}).items())),
        transport.get("socket_connect_timeout"),
        transport.get("socket_timeout"),
        transport.get("master_name"),
    )


@functools.cache
def _client(
    url: str, tls: tuple, connect_timeout: float | None, timeout: float | None, master_name: str | None
) -> redis.Redis:
    # One pool per URL and options for the process's life; redis-py makes a new pool in a forked child.
    timeouts: dict[str, Any] = {"socket_connect_timeout": connect_timeout, "socket_timeout": timeout}
    if urlsplit(url).scheme != "sentinel":
        return redis.Redis.from_url(url, **timeouts, **dict(tls))
    if not master_name:
        raise ValueError("a sentinel:// broker URL needs master_name in CELERY_BROKER_TRANSPORT_OPTIONS")
    # kombu's form: sentinel://[:password@]host:port/db, several joined by ";". The password is the primary's.
    sentinels = [urlsplit(part) for part in url.split(";") if part]
    first = sentinels[0]
    database = int(first.path.strip("/") or 0)
    return Sentinel([(part.hostname or "", part.port or 26379) for part in sentinels], **timeouts).master_for(
        master_name, db=database, password=first.password, username=first.username or None, **timeouts, **dict(tls)
    )

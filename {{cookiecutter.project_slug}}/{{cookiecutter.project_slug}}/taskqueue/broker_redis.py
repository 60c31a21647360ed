"""A redis-py client on the broker's Redis, for what reads or writes there besides kombu: queues and metrics.

The cache lives in a database of its own (config/redis_roles.py), so queue depths and the metrics that must
survive ``cache.clear()`` are read and written here, with the broker's URL, TLS options and socket timeouts.
"""

import functools

import redis


def client() -> redis.Redis:
    from config.celery_app import app  # at call time: the app is configured by then

    conf = app.conf
    transport = conf.broker_transport_options or {}
    return _client(
        conf.broker_url,
        tuple(sorted((conf.broker_use_ssl or {}).items())),
        transport.get("socket_connect_timeout"),
        transport.get("socket_timeout"),
    )


@functools.cache
def _client(url: str, tls: tuple, connect_timeout: float | None, timeout: float | None) -> redis.Redis:
    # One pool per URL and options for the process's life; redis-py makes a new pool in a forked child.
    return redis.Redis.from_url(url, socket_connect_timeout=connect_timeout, socket_timeout=timeout, **dict(tls))

"""The Redis database a benchmark may fill and flush: never one that holds someone's data."""

from urllib.parse import urlsplit, urlunsplit

import redis

from tools.bench.errors import BenchmarkError

# The last of Redis' 16 default databases: the project itself uses 0.
DEFAULT_DATABASE = 15


def with_database(url: str, database: int) -> str:
    """The same Redis server as `url`, database number `database`."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def claim(client: redis.Redis, *, flush: bool) -> None:
    """Make sure the benchmark may use this database: empty, or emptied because the user said so."""
    keys = client.dbsize()
    if keys and not flush:
        raise BenchmarkError(
            f"Redis database {client.connection_pool.connection_kwargs.get('db', 0)} holds {keys} keys. The "
            "benchmark empties its database before and after it runs: pass --yes to flush this one, or "
            "--redis-db N for an empty one, or --start-redis to use a redis-server of its own."
        )
    client.flushdb()

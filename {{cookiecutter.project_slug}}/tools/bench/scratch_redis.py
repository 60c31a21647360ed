"""The Redis database a benchmark may fill and flush: never one that holds someone's data."""

from urllib.parse import urlsplit, urlunsplit

import redis

from tools.bench.errors import BenchmarkError

# The last of Redis' 16 default databases: the project itself uses 0, 1 and 2 (config/redis_roles.py).
DEFAULT_DATABASE = 15
# Redis' default number of databases.
DATABASES = 16


def with_database(url: str, database: int) -> str:
    """The same Redis server as `url`, database number `database`."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def worker_role_env(url: str) -> dict[str, str]:
    """The workers' result and cache URLs when REDIS_URL's next two databases do not exist (15 gives 16, 17).

    Then they go to the two databases below the benchmark's; the workers write only expiring keys there.
    """
    database = int(urlsplit(url).path.strip("/") or 0)
    if database + 2 < DATABASES:
        return {}
    return {
        "CELERY_RESULT_BACKEND_URL": with_database(url, database - 1),
        "REDIS_CACHE_URL": with_database(url, database - 2),
    }


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

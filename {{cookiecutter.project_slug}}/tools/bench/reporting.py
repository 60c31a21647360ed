"""Where benchmark tasks report back: counters and latency samples in REDIS_URL's database (the broker's, on Redis).

The benchmark reads these instead of task results, so it measures the project's
settings (results ignored) and not a result backend.
"""

import functools

import redis


@functools.cache
def redis_client(url: str) -> redis.Redis:
    """One connection pool per process and URL (redis-py pools are thread-safe)."""
    return redis.Redis.from_url(url)


def done_key(run_id: str) -> str:
    return f"bench:{run_id}:done"


def latency_key(run_id: str) -> str:
    return f"bench:{run_id}:latency"

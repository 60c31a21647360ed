"""The tasks the benchmark sends. Workers load them only when the benchmark starts them (`-I`).

Each one reports to the benchmark's Redis database (REDIS_URL, see reporting.py), so the benchmark counts
completions and reads latencies without a result backend.
"""

import time

from celery import shared_task
from django.conf import settings

from tools.bench.reporting import done_key, latency_key, redis_client


def spin(rounds: int) -> int:
    """Pure-Python CPU work: holds the GIL for its whole duration, like real CPU-bound code."""
    total = 0
    for number in range(rounds):
        total += number * number
    return total


@shared_task(name="bench.noop")
def noop(run_id: str) -> None:
    redis_client(settings.REDIS_URL).incr(done_key(run_id))


@shared_task(name="bench.sleep")
def sleep(run_id: str, seconds: float) -> None:
    """Stands for an HTTP call: the worker slot waits, the CPU does not."""
    time.sleep(seconds)
    redis_client(settings.REDIS_URL).incr(done_key(run_id))


@shared_task(name="bench.burn_cpu")
def burn_cpu(run_id: str, rounds: int) -> None:
    spin(rounds)
    redis_client(settings.REDIS_URL).incr(done_key(run_id))


@shared_task(name="bench.record_start")
def record_start(run_id: str, sent_at: float) -> None:
    """Record how long the message took from `delay()` to this task starting (same machine, same clock)."""
    redis_client(settings.REDIS_URL).rpush(latency_key(run_id), time.time() - sent_at)

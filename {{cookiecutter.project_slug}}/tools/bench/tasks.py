"""The tasks the benchmark sends. Workers load them only when the benchmark starts them (`-I`).

Each one reports to the broker's Redis (see reporting.py), so the benchmark counts
completions and reads latencies without a result backend.
"""

import time

from celery import shared_task

from tools.bench.reporting import done_key, latency_key, redis_client


def spin(rounds: int) -> int:
    """Pure-Python CPU work: holds the GIL for its whole duration, like real CPU-bound code."""
    total = 0
    for number in range(rounds):
        total += number * number
    return total


@shared_task(name="bench.noop", bind=True)
def noop(self, run_id: str) -> None:
    redis_client(self.app.conf.broker_url).incr(done_key(run_id))


@shared_task(name="bench.sleep", bind=True)
def sleep(self, run_id: str, seconds: float) -> None:
    """Stands for an HTTP call: the worker slot waits, the CPU does not."""
    time.sleep(seconds)
    redis_client(self.app.conf.broker_url).incr(done_key(run_id))


@shared_task(name="bench.burn_cpu", bind=True)
def burn_cpu(self, run_id: str, rounds: int) -> None:
    spin(rounds)
    redis_client(self.app.conf.broker_url).incr(done_key(run_id))


@shared_task(name="bench.record_start", bind=True)
def record_start(self, run_id: str, sent_at: float) -> None:
    """Record how long the message took from `delay()` to this task starting (same machine, same clock)."""
    redis_client(self.app.conf.broker_url).rpush(latency_key(run_id), time.time() - sent_at)

"""Tasks for the shutdown and hard-time-limit tests, run by real worker processes (--include this module).

Each counts its runs in Redis (``shutdown:<marker>:started`` / ``:finished``), on the worker's own database,
so a test sees whether a task finished, ran again or was lost.
"""

import time

import redis
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings


def _count(marker: str, event: str) -> int:
    return redis.Redis.from_url(settings.REDIS_URL).incr(f"shutdown:{marker}:{event}")


@shared_task(name="tests.sleep_counted")
def sleep_counted(marker: str, seconds: float) -> None:
    """On the default queue (prefork): runs for ``seconds``, counting its starts and ends."""
    _count(marker, "started")
    time.sleep(seconds)
    _count(marker, "finished")


@shared_task(name="tests.fetch_counted", io_timeout=60)
def fetch_counted(marker: str, seconds: float) -> None:
    """On the io queue (threads): a call that takes ``seconds`` (no time limit can stop it)."""
    _count(marker, "started")
    time.sleep(seconds)
    _count(marker, "finished")


@shared_task(name="tests.fetch_hanging_once", io_timeout=60)
def fetch_hanging_once(marker: str) -> None:
    """On the io queue: its first run hangs (a call that never answers), any later run finishes at once."""
    if _count(marker, "started") == 1:
        time.sleep(60)
    _count(marker, "finished")


@shared_task(name="tests.overrun_after_a_retry", bind=True, max_retries=3, soft_time_limit=1, time_limit=2)
def overrun_after_a_retry(self, marker: str, *, seconds: float = 30) -> None:
    """Retries once, then ignores its soft limit and is killed at its 2 s hard limit; a later run (a replay) ends."""
    started = _count(marker, "started")
    if started == 1:
        raise self.retry(countdown=0)
    if started == 2:
        try:
            time.sleep(seconds)
        except SoftTimeLimitExceeded:
            time.sleep(seconds)  # a task that does not clean up in time: only the kill stops it
    _count(marker, "finished")

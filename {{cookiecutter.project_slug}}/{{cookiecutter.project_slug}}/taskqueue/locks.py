"""A distributed lock that keeps two runs of the same task on the same object from overlapping."""

import contextlib
from collections.abc import Iterator

from celery import Task
from redis.exceptions import LockNotOwnedError

from {{ cookiecutter.project_slug }}.taskqueue.cache_client import redis_cache

# Extra seconds the lock outlives the task's hard time limit, for the worker to notice the kill.
LOCK_MARGIN = 30


def hard_time_limit(task: Task) -> float:
    """The hard time limit this run of the task gets: per call, per task or the global default."""
    per_call = (task.request.timelimit or (None, None))[0]
    return per_call or task.time_limit or task.app.conf.task_time_limit


@contextlib.contextmanager
def task_lock(task: Task, key: str, *, blocking_timeout: float = 1.0) -> Iterator[bool]:
    """Hold ``lock:<key>`` in Redis while the block runs; yield False if another run holds it.

    The lock expires after the task's hard time limit (plus a margin): a run killed by the
    limit cannot release it, and a lock that expired while its run went on would let a
    second run in. The blocking timeout is short: the loser should give up, not queue up.
    """
    lock = redis_cache().lock(
        f"lock:{key}", timeout=hard_time_limit(task) + LOCK_MARGIN, blocking_timeout=blocking_timeout
    )
    acquired = lock.acquire()
    try:
        yield acquired
    finally:
        if acquired:
            # Expired and taken by another run (only if the margin was too short): nothing to release.
            with contextlib.suppress(LockNotOwnedError):
                lock.release()

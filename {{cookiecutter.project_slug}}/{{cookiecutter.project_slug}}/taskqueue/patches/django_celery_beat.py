"""django-celery-beat's ``DatabaseScheduler``, with a beat lock, a heartbeat, and one send per due task.

Upstream: django-celery-beat 2.9 (tested with 2.9.0, Celery 5.7). ``CELERY_BEAT_SCHEDULER`` names
this module's ``HeartbeatDatabaseScheduler``.

What it changes, and why:

1. One send per due task when the schedule changes mid-tick (celery/django-celery-beat#558,
   celery/celery#7577: periodic tasks run several times). Celery's own ``Scheduler.reserve``
   keeps the schedule's entry current after a send; ``DatabaseScheduler`` does not, so a heap
   rebuilt from the schedule (another beat starting, an admin edit noticed mid-tick) still sees
   the old ``last_run_at`` and sends the task again. Here ``reserve`` updates the entry.
2. A beat lock in Redis (no upstream equivalent: Celery expects exactly one beat, and sends every
   periodic task twice when a second one starts). Only the beat holding the lock sends; a second
   beat stands by and takes over within ``BEAT_LOCK_TIMEOUT`` of the first one dying.
3. A heartbeat file touched after every tick that worked, for compose/healthcheck-beat (and the Kubernetes
   liveness probe), and a watchdog (taskqueue/liveness.py) that ends a beat whose ticks stop for
   BEAT_STUCK_AFTER seconds, so that compose's restart policy starts a fresh one: plain Docker does not
   restart a container for failing its health check.

To remove it: set ``CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"``
and drop the beat health check (compose/healthcheck-beat and the compose files' healthcheck), which would
then have no heartbeat to read.
Then run exactly one beat, always: nothing stops a second one.
"""

import logging
import os
import socket
import uuid
from pathlib import Path

from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler
from redis.exceptions import LockError, RedisError

from {{ cookiecutter.project_slug }}.taskqueue.cache_client import redis_cache
from {{ cookiecutter.project_slug }}.taskqueue.liveness import Watchdog
from {{ cookiecutter.project_slug }}.taskqueue.metrics import record_beat_tick

logger = logging.getLogger(__name__)

BEAT_LOCK_KEY = "beat-lock"
# Seconds between attempts when Redis cannot be reached; the heartbeat goes stale meanwhile.
REDIS_RETRY_INTERVAL = 5.0


class HeartbeatDatabaseScheduler(DatabaseScheduler):
    """Send due tasks only while holding the beat lock; touch ``settings.BEAT_HEARTBEAT_FILE`` every tick."""

    def __init__(self, *args, **kwargs):
        self.lock_timeout = settings.BEAT_LOCK_TIMEOUT
        # One scheduler per beat process, so the token is this object's, not a thread's.
        self.lock = redis_cache().lock(BEAT_LOCK_KEY, timeout=self.lock_timeout, thread_local=False)
        self.lock_token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.holds_lock = False
        self.standing_by = False
        self.watchdog = Watchdog("Beat", "BEAT_STUCK_AFTER", float(settings.BEAT_STUCK_AFTER))
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs):
        # Each tick, even one that cannot reach Redis, shows the loop advancing; one that never returns does not.
        self.watchdog.beat()
        if not self.watchdog.armed:
            self.watchdog.arm()
        try:
            active = self.hold_lock()
        except RedisError as exc:
            logger.warning("Beat cannot reach Redis for its lock, so it sends nothing until it can: %s", exc)
            self.watchdog.beat(next_in=REDIS_RETRY_INTERVAL)
            return REDIS_RETRY_INTERVAL
        if active:
            # Wake up often enough to refresh the lock before it expires.
            interval = min(super().tick(*args, **kwargs), self.lock_timeout / 3)
        else:
            interval = min(self.max_interval, self.lock_timeout / 3)
        # Only after a tick that worked: a tick that raises leaves the heartbeat to go stale.
        Path(settings.BEAT_HEARTBEAT_FILE).touch()
        # And for /metrics and the admin's queues page, which run elsewhere (taskqueue/metrics.py).
        record_beat_tick()
        # Beat sleeps until the next tick: the watchdog counts from then.
        self.watchdog.beat(next_in=interval)
        return interval

    def hold_lock(self) -> bool:
        """Refresh the lock if this beat holds it, else try to take it; True if this beat may send tasks."""
        if self.holds_lock:
            try:
                return self.lock.reacquire()
            except LockError:
                self.holds_lock = False
                logger.error(
                    "Beat %s lost the beat lock to %s (it did not tick for BEAT_LOCK_TIMEOUT=%s s); standing by",
                    self.lock_token,
                    self.lock_holder(),
                    self.lock_timeout,
                )
        if self.lock.acquire(blocking=False, token=self.lock_token):
            self.holds_lock = True
            logger.info("Beat %s holds the beat lock: it sends the periodic tasks", self.lock_token)
            if self.standing_by:
                self.standing_by = False
                self.reload_schedule()
            return True
        if not self.standing_by:
            self.standing_by = True
            logger.warning(
                "Another beat (%s) holds the beat lock: this one (%s) sends nothing and stands by; it takes over "
                "within BEAT_LOCK_TIMEOUT=%s s of the other one stopping. Run a single beat.",
                self.lock_holder(),
                self.lock_token,
                self.lock_timeout,
            )
        return False

    def lock_holder(self) -> str:
        token = self.lock.redis.get(self.lock.name)
        return token.decode() if token else "nobody"

    def describe_protections(self) -> str:
        return (
            f"Beat scheduler: sends only while holding the beat lock (BEAT_LOCK_TIMEOUT={self.lock_timeout} s), "
            f"touches {settings.BEAT_HEARTBEAT_FILE} after every tick, and sends each due task once."
        )

    def reserve(self, entry):
        new_entry = super().reserve(entry)
        # As Celery's own Scheduler does (django-celery-beat's does not): keep the schedule's entry current.
        # Else a heap rebuilt from it after a schedule change noticed mid-tick (another beat starting, an
        # admin edit), still sees the old last_run_at and sends the task a second time.
        if new_entry.name in self._schedule:
            self._schedule[new_entry.name] = new_entry
        return new_entry

    def reload_schedule(self) -> None:
        # The other beat moved every entry's last_run_at on while this one stood by: read them afresh.
        self._schedule = self.all_as_schedule()
        self._heap = None

    def close(self):
        self.watchdog.disarm()
        # Write last_run_at first, so the beat that takes over reads where this one stopped.
        super().close()
        if self.holds_lock:
            self.holds_lock = False
            try:
                self.lock.release()
            except (LockError, RedisError) as exc:
                logger.warning("Beat could not release the beat lock (it expires by itself): %s", exc)
        # A stopped beat is unhealthy at once, not a minute later.
        Path(settings.BEAT_HEARTBEAT_FILE).unlink(missing_ok=True)

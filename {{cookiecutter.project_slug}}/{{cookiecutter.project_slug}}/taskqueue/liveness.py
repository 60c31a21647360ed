"""Liveness of workers and beat: a heartbeat file their loop touches, and a watchdog that ends a stuck process.

A worker's consumer loop touches ``<WORKER_HEARTBEAT_DIR>/celery-worker-<node>@<host>.heartbeat`` every
HEARTBEAT_INTERVAL seconds from a timer of its own event loop, so the file is fresh only while that loop
advances; beat touches BEAT_HEARTBEAT_FILE after every tick. compose/healthcheck-worker and
compose/healthcheck-beat read those files' age (a few milliseconds of CPU, where ``celery inspect ping``
imported Django and every task), and since they open no broker connection they cannot disagree with
the process's own broker settings (TLS, ACL user, Sentinel).

Plain Docker never restarts an unhealthy container, so the process also watches itself: a thread
that sees the loop not advance for WORKER_STUCK_AFTER seconds (a worker) or BEAT_STUCK_AFTER (beat)
logs one CRITICAL line and exits with STUCK_EXIT_CODE, and the restart policy starts a fresh one.
The tasks a stuck worker held are unacknowledged: they go back to their queue (late acks, the
transport's claim sweep), as after any worker death. A worker reconnecting to the broker is not
stuck: its loop is stopped on purpose, and the watchdog is disarmed until the consumer runs again; nor is a worker
shutting down (a warm shutdown waiting for its tasks, the io worker's soft shutdown window).
"""

import contextlib
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from celery import bootsteps
from celery.utils import log as celery_log
from django.conf import settings

logger = logging.getLogger(__name__)

# Seconds between two touches of a worker's heartbeat file.
HEARTBEAT_INTERVAL = 2.0
# The exit status of a process its watchdog ended (EX_TEMPFAIL: try again).
STUCK_EXIT_CODE = 75


def worker_heartbeat_file(nodename: str) -> Path:
    """The heartbeat file of the worker named ``nodename`` (``default@host``): another worker's never counts."""
    directory = getattr(settings, "WORKER_HEARTBEAT_DIR", "") or tempfile.gettempdir()
    return Path(directory) / f"celery-worker-{nodename}.heartbeat"


class Watchdog:
    """Exit the process when ``beat()`` has not been called for ``stuck_after`` seconds while armed."""

    def __init__(
        self,
        what: str,
        setting: str,
        stuck_after: float,
        paused: Callable[[], bool] = lambda: False,
        children: Callable[[], list[int]] = list,
    ):
        self.what, self.setting, self.stuck_after = what, setting, stuck_after
        # True while something holds the loop on purpose: the watchdog counts that time as advancing.
        self.paused = paused
        # The pids of the process's pool children, which must not outlive it.
        self.children = children
        self.last = time.monotonic()
        self.armed = False
        self._thread: threading.Thread | None = None

    def beat(self, next_in: float = 0.0) -> None:
        """The loop advanced; ``next_in``: it sleeps that long on purpose before the next beat."""
        self.last = time.monotonic() + next_in

    def arm(self) -> None:
        self.last = time.monotonic()
        self.armed = True
        if self.stuck_after > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._watch, name=f"{self.what}-watchdog", daemon=True)
            self._thread.start()

    def disarm(self) -> None:
        self.armed = False

    def _watch(self) -> None:
        while True:
            time.sleep(min(1.0, self.stuck_after / 4))
            if self.paused():
                self.beat()
            silent = time.monotonic() - self.last
            if self.armed and silent > self.stuck_after:
                self._end(silent)

    def _end(self, silent: float) -> None:
        logger.critical(
            "%s loop has not advanced for %.0f s (%s=%g): exiting with status %d so that the restart policy "
            "starts a fresh one; the tasks it held go back to their queues.",
            self.what,
            silent,
            self.setting,
            self.stuck_after,
            STUCK_EXIT_CODE,
        )
        pids: list[int] = []
        with contextlib.suppress(Exception):  # the pool is the stuck loop's: read what can be read
            pids = self.children()
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(STUCK_EXIT_CODE)


def shutting_down() -> bool:
    """True while Celery's shutdown handler runs: it holds the loop on purpose, for up to the soft shutdown window.

    The io worker's SIGTERM waits CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT there, and WORKER_STUCK_AFTER need not
    exceed it. Celery (5.7) flags its signal handlers in this module attribute; were it gone, the watchdog would
    count the window as a stuck loop (tests/taskqueue/test_liveness.py fails), never stop watching.
    """
    return getattr(celery_log, "_in_sighandler", False)


class LoopHeartbeat(bootsteps.StartStopStep):
    """A consumer step: touch the worker's heartbeat file from its event loop, and watch that loop."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c, **kwargs):
        super().__init__(c, **kwargs)
        self.file = worker_heartbeat_file(c.hostname)
        self.watchdog = Watchdog(
            "Worker",
            "WORKER_STUCK_AFTER",
            float(getattr(settings, "WORKER_STUCK_AFTER", 0)),
            paused=shutting_down,
            # A prefork pool lists its children's pids in its info (a threads pool has none).
            children=lambda: list((c.pool.info or {}).get("processes", [])) if c.pool is not None else [],
        )
        self.tref = None

    def start(self, c):
        self.touch()
        self.watchdog.arm()
        self.tref = c.timer.call_repeatedly(HEARTBEAT_INTERVAL, self.touch)

    def touch(self) -> None:
        self.watchdog.beat()
        try:
            self.file.touch()
        except OSError as exc:
            logger.warning("Cannot touch the worker heartbeat file %s: %s", self.file, exc)

    def stop(self, c):
        # The consumer stops to reconnect, or the worker stops: either way its loop is not stuck.
        self.watchdog.disarm()
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    def shutdown(self, c):
        self.stop(c)
        # A stopped worker is unhealthy at once, not a minute later.
        self.file.unlink(missing_ok=True)

"""Tasks the reliability suite sends to real workers.

Never loaded in production: the suite's workers import this module through
``CELERY_WORKER_INCLUDE`` (the worker's ``--include`` option), so they run the Procfile
command unchanged.
"""

import os
import time

from celery import shared_task

from {{ cookiecutter.project_slug }}.taskqueue.django_tasks_api import TaskContext, task
from tests.reliability import ledger


@shared_task(name="reliability.apply_effect", bind=True)
def apply_effect(self, key: str, hold_before: float = 0, hold_after: float = 0, padding: str = "") -> None:
    """Record the run, work for a while, apply the effect once per key, work again, record the end.

    A kill during ``hold_before`` leaves no effect (a lost task would show); one during
    ``hold_after`` leaves an effect but no ack (a duplicate would show). ``padding`` only makes
    the message bigger.
    """
    run_id = ledger.start_run(key, self.request.id)
    time.sleep(hold_before)
    ledger.apply_effect_once(key, run_id)
    time.sleep(hold_after)
    ledger.finish_run(run_id)


@shared_task(name="reliability.apply_effect_after_a_retry", bind=True, max_retries=3)
def apply_effect_after_a_retry(self, key: str, wait_for: str = "") -> None:
    """The first run waits for the signal ``wait_for`` (a fault under way), then retries at once; the retry applies
    the effect once. Each run's task_id in the ledger is "<id>:<retries>", so a rerun of the original shows."""
    run_id = ledger.start_run(key, f"{self.request.id}:{self.request.retries}")
    if self.request.retries == 0:
        if wait_for:
            ledger.wait_for_signal(wait_for)
        raise self.retry(countdown=0)
    ledger.apply_effect_once(key, run_id)
    ledger.finish_run(run_id)


@shared_task(name="reliability.apply_effect_when_signalled", bind=True)
def apply_effect_when_signalled(self, key: str, wait_for: str, timeout: float = 60.0) -> None:
    """Apply the effect and finish once the test raises ``wait_for`` (within ``timeout`` s): the run ends, and is
    acked, during a fault."""
    run_id = ledger.start_run(key, self.request.id)
    ledger.wait_for_signal(wait_for, timeout=timeout)
    ledger.apply_effect_once(key, run_id)
    ledger.finish_run(run_id)


@task(takes_context=True)
def apply_effect_as_django_task(context: TaskContext, key: str, hold_before: float = 0, hold_after: float = 0) -> None:
    """apply_effect as a Django task (Django's ``@task``, ``.enqueue()``), run by taskqueue.run_django_task."""
    run_id = ledger.start_run(key, context.task_result.id)
    time.sleep(hold_before)
    ledger.apply_effect_once(key, run_id)
    time.sleep(hold_after)
    ledger.finish_run(run_id)


@shared_task(name="reliability.record_tick", bind=True)
def record_tick(self, key: str) -> None:
    """Sent by beat: one run per periodic dispatch."""
    ledger.finish_run(ledger.start_run(key, self.request.id))


@shared_task(name="reliability.crash_worker", bind=True, max_deliveries=3)
def crash_worker(self, key: str) -> None:
    """A poison message: it kills the process that runs it, as a segfault or the OOM killer would."""
    ledger.start_run(key, self.request.id)
    os._exit(1)

"""The worker side of the delivery-contract harness: each fault, applied from inside the worker at a chosen moment.

Loaded by the harness's workers through ``CELERY_WORKER_INCLUDE`` (never in production), configured by
CONTRACT_FAULT (a key of taskqueue/contracts.py FAULTS), CONTRACT_TASK (the task's name) and CONTRACT_DIR (a
directory of the test's own). Each fault happens once, on the first run that reaches its moment (a file created with
O_EXCL says it has), so that the redelivered run shows what the task does after it:

- the run's "first database write" is the first INSERT, UPDATE or DELETE of a table that is not the platform's own
  (results, beat, dead letters): where a task's effect starts. kill-before-effect SIGKILLs the process there, before
  the statement runs; database-error raises OperationalError there; {{ cookiecutter.broker }}-stall-retry calls the task's
  retry() there.
- kill-after-effect SIGKILLs the process at task_postrun: the run returned (its transaction committed) and the ack
  has not been sent (late acks: the pool's parent, or the thread after this signal, sends it).
- sigterm, {{ cookiecutter.broker }}-restart, {{ cookiecutter.broker }}-stall and {{ cookiecutter.broker }}-stall-retry hold the first run at task_prerun until the
  test has applied the fault (the file ``release`` appears), so that the fault finds the run in flight.

Every run's start and end are appended to ``events.jsonl`` for the harness to read.
"""

import json
import os
import signal
import time
from pathlib import Path

from celery import current_task
from celery.signals import task_postrun, task_prerun
from django.db import OperationalError, connection

FAULT = os.environ.get("CONTRACT_FAULT", "")
TASK = os.environ.get("CONTRACT_TASK", "")
DIRECTORY = Path(os.environ.get("CONTRACT_DIR", "."))
HOLDING = {"sigterm", "{{ cookiecutter.broker }}-restart", "{{ cookiecutter.broker }}-stall", "{{ cookiecutter.broker }}-stall-retry"}
AT_FIRST_WRITE = {"kill-before-effect", "database-error", "{{ cookiecutter.broker }}-stall-retry"}
PLATFORM_TABLES = ("django_celery_results_", "django_celery_beat_", "taskqueue_", "django_cache")
HOLD_TIMEOUT = 120.0


def once(name: str) -> bool:
    """True the first time any process of the test asks for ``name``."""
    try:
        os.close(os.open(DIRECTORY / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def record(event: str, **fields) -> None:
    line = json.dumps({"event": event, "pid": os.getpid(), "at": time.time(), **fields}) + "\n"
    with open(DIRECTORY / "events.jsonl", "a") as events:  # one short append: atomic between processes
        events.write(line)


def is_effect_write(sql: str) -> bool:
    statement = sql.lstrip().upper()
    if not statement.startswith(("INSERT", "UPDATE", "DELETE")):
        return False
    return not any(table in sql for table in PLATFORM_TABLES)


def at_first_write(execute, sql, params, many, context):
    if is_effect_write(sql) and once("fault"):
        record("fault", fault=FAULT)
        if FAULT == "kill-before-effect":
            os.kill(os.getpid(), signal.SIGKILL)
        if FAULT == "database-error":
            raise OperationalError("injected by the delivery-contract harness: the database dropped the connection")
        if FAULT == "{{ cookiecutter.broker }}-stall-retry":
            raise current_task.retry(countdown=0)
    return execute(sql, params, many, context)


def wait_for_release() -> None:
    deadline = time.monotonic() + HOLD_TIMEOUT
    while not (DIRECTORY / "release").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the delivery-contract test did not release the held run within {HOLD_TIMEOUT} s")
        time.sleep(0.02)


@task_prerun.connect
def before_run(sender=None, task_id=None, **extra):
    if getattr(sender, "name", None) != TASK:
        return
    record("start", task_id=task_id, retries=sender.request.retries or 0)
    if FAULT in HOLDING and once("held"):
        record("held", task_id=task_id)
        wait_for_release()
    if FAULT in AT_FIRST_WRITE:
        connection.execute_wrappers.append(at_first_write)


@task_postrun.connect
def after_run(sender=None, task_id=None, state=None, **extra):
    if getattr(sender, "name", None) != TASK:
        return
    if at_first_write in connection.execute_wrappers:
        connection.execute_wrappers.remove(at_first_write)
    record("end", task_id=task_id, state=state, retries=sender.request.retries or 0)
    if FAULT == "kill-after-effect" and once("fault"):
        record("fault", fault=FAULT)
        os.kill(os.getpid(), signal.SIGKILL)

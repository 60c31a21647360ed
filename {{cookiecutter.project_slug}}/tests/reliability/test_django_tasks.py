"""A Django task (``@task``, ``.enqueue()``) whose worker dies mid-run: redelivered, its effect applied once.

The task is enqueued by another process, as a web process enqueues it: inside a transaction, sent when it commits,
through taskqueue/task_backend.py to the scenario's broker. It then runs as the Celery task taskqueue.run_django_task,
whose late ack and reject-on-worker-lost are the project's (tests/reliability/test_worker_deaths.py for its own
tasks).
"""

import json
import os
import signal
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from tests.reliability.deployment import VISIBILITY_TIMEOUT, Deployment
from tests.reliability.ledger import Figures
from tests.reliability.test_worker_deaths import (
    HOLD,
    POOL_CHILD_LIMITS,
    REDELIVERY_TIMEOUT,
    first_run,
    wait_completed,
)
from tests.support.django_process import run_python

pytestmark = pytest.mark.reliability

ENQUEUE = """
import json, sys
from django.db import transaction
from tests.reliability.tasks import apply_effect_as_django_task
with transaction.atomic():
    results = [apply_effect_as_django_task.enqueue(key, **options) for key, options in json.loads(sys.argv[1])]
print(json.dumps([result.id for result in results]))
"""


def enqueue(deployment: Deployment, tasks: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Enqueue Django tasks (key, keyword arguments) from a process of their own, in one transaction."""
    ids, _ = run_python(ENQUEUE, deployment.env(), json.dumps(tasks))
    return list(ids)


@pytest.mark.parametrize("phase", ["before-effect", "after-effect"])
def test_a_django_tasks_pool_child_killed_mid_run_runs_again_and_applies_its_effect_once(
    deployment: Deployment, ledger: ModuleType, report: Callable[[Figures], Figures], phase: str
) -> None:
    workers = deployment.start_workers("worker1", "worker2", limits=POOL_CHILD_LIMITS)
    key = f"django-child-{phase}"
    holds = {"hold_before": HOLD} if phase == "before-effect" else {"hold_after": HOLD}
    (task_id,) = enqueue(deployment, [(key, holds)])

    run = first_run(ledger, key, with_effect=phase == "after-effect")
    assert run.task_id == task_id
    victim = deployment.worker_of(run.pid)
    assert run.pid != victim.pid, "the task ran in the pool child, not the worker's main process"
    os.kill(run.pid, signal.SIGKILL)

    wait_completed(ledger, [key], timeout=60)
    figures = report(
        ledger.figures(
            f"django-task pool-child-sigkill, {phase.replace('-', ' ')}",
            [key],
            notes=f"2 workers; the child of {victim.node} killed",
        )
    )
    assert (figures.lost, figures.duplicated, figures.completed) == (0, 0, 1)
    assert figures.executions == 2, "the killed run was not delivered again"
    assert {other.task_id for other in ledger.runs(key)} == {task_id}
    assert all(worker.process is not None and worker.process.poll() is None for worker in workers)


def test_a_django_tasks_whole_worker_killed_mid_run_is_redelivered_and_applied_once(
    deployment: Deployment, ledger: ModuleType, report: Callable[[Figures], Figures]
) -> None:
    deployment.start_workers("worker1", "worker2")
    keys = ["django-node-death", *(f"django-node-death-after-{number}" for number in range(10))]
    enqueue(deployment, [(keys[0], {"hold_before": HOLD})])
    run = first_run(ledger, keys[0])
    doomed = deployment.worker_of(run.pid)
    # Killed at once, well inside the run's HOLD: the rest is enqueued after the kill, since enqueueing from a
    # process of its own takes seconds on a loaded machine (the run once finished before a kill that came later).
    doomed_pids = doomed.pids()
    doomed.kill_group()  # the node dies with its pool: nobody is left to requeue the message
    assert ledger.runs(keys[0])[0].finished_at is None, "the first run finished before its worker was killed"
    enqueue(deployment, [(key, {"hold_before": 0.2}) for key in keys[1:]])
    deployment.start_worker("replacement")
    wait_completed(ledger, keys, timeout=REDELIVERY_TIMEOUT)

    first, second = ledger.runs(keys[0])
    waited = second.started_at - first.started_at
    figures = report(
        ledger.figures(
            "django-task worker-sigkill",
            keys,
            notes=f"2 workers, {doomed.node} killed; redelivered {waited:.1f} s after the first run",
        )
    )
    assert (figures.lost, figures.duplicated, figures.completed) == (0, 0, len(keys))
    ledger.assert_only_killed_runs_repeated(keys, doomed_pids)
{%- if cookiecutter.broker == "rabbitmq" %}
    # At once, on the dead worker's closed connection: no visibility timeout to wait out.
    assert waited < VISIBILITY_TIMEOUT - 1
{%- else %}
    assert waited >= VISIBILITY_TIMEOUT - 1
{%- endif %}

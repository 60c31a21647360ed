"""A message that kills its worker process every time is failed after max_deliveries runs, not delivered forever."""

import dataclasses

import pytest

from {{ cookiecutter.project_slug }}.taskqueue.models import FailedTask
from tests.reliability import tasks
from tests.support.waiting import wait_until

pytestmark = pytest.mark.reliability


def test_a_message_that_kills_its_process_every_time_becomes_a_dead_letter_and_the_worker_moves_on(
    deployment, broker, ledger, report
):
    worker = deployment.start_worker()
    poison_id = broker.send(tasks.crash_worker.name, args=["poison"])
    failed = wait_until(
        lambda: FailedTask.objects.filter(task_id=poison_id).first(), timeout=120, what="the poison dead letter"
    )
    broker.send(tasks.apply_effect.name, args=["after-poison"])
    wait_until(lambda: ledger.completed(["after-poison"]), timeout=60, what="the task sent after the poison")

    runs = len(ledger.runs("poison"))
    after = ledger.figures("poison-message", ["after-poison"])
    figures = report(
        dataclasses.replace(
            after,
            sent=2,
            executions=after.executions + runs,
            notes=f"the poison task killed its process {runs} times, then became a dead letter; "
            "the task sent after it completed",
        )
    )
    assert runs == tasks.crash_worker.max_deliveries
    assert failed.exception == "PoisonMessageError"
    assert f"max_deliveries={tasks.crash_worker.max_deliveries}" in failed.message
    # taskqueue/signals.py logs the failure with the task id, in the poison's child after its dead letter was
    # made, while the task sent after it ran in the other child: wait for the line, do not assume it came first.
    worker.wait_for_output("PoisonMessageError", timeout=10)
    assert (figures.completed, figures.lost, figures.duplicated) == (1, 0, 0)
    # Acked, so it never comes back: nothing is queued or waiting for the visibility timeout.
    assert broker.queued("default") == 0
    wait_until(lambda: broker.unacked() == 0, timeout=30, what="every message to be acked")
    assert worker.process.poll() is None

"""A countdown or ETA beyond the visibility timeout: Redis delivers the message again before it is due.

A worker holds an ETA task unacked until it is due; once the visibility timeout passes, Redis
hands the same message out again, and both copies run. Every send refuses such delays (taskqueue/message_limits.py).
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from {{ cookiecutter.project_slug }}.taskqueue.message_limits import CountdownTooLongError
from {{ cookiecutter.project_slug }}.taskqueue.sending import send_task_by_name
from tests.reliability import tasks
from tests.reliability.deployment import TIMEOUTS, VISIBILITY_TIMEOUT
from tests.support.waiting import wait_until

pytestmark = pytest.mark.reliability

COUNTDOWN = VISIBILITY_TIMEOUT + 4


def test_a_countdown_beyond_the_visibility_timeout_runs_twice_so_every_send_refuses_it(
    deployment, broker, ledger, report, settings
):
    settings.TASK_MAX_COUNTDOWN = TIMEOUTS["TASK_MAX_COUNTDOWN"]
    with pytest.raises(CountdownTooLongError, match="TASK_MAX_COUNTDOWN"):
        send_task_by_name(tasks.apply_effect.name, args=["eta-refused"], countdown=COUNTDOWN)
    with pytest.raises(CountdownTooLongError, match="TASK_MAX_COUNTDOWN"):
        send_task_by_name(
            tasks.apply_effect.name,
            args=["eta-refused"],
            eta=timezone.now() + timedelta(seconds=COUNTDOWN),
        )
    with pytest.raises(CountdownTooLongError, match="TASK_MAX_COUNTDOWN"):
        tasks.apply_effect.apply_async(["eta-refused"], countdown=COUNTDOWN)

    # Why: the same message from a producer without this limit (another service, an older release).
    settings.TASK_MAX_COUNTDOWN = COUNTDOWN
    deployment.start_worker()
    broker.send(tasks.apply_effect.name, args=["eta-trap"], countdown=COUNTDOWN)
    # Both copies fall due at the same moment and run side by side: wait until both have finished, not only
    # started, or the figures are read before either has applied its effect (completed=0 lost=1 once in CI).
    wait_until(
        lambda: sum(run.finished_at is not None for run in ledger.runs("eta-trap")) >= 2,
        timeout=COUNTDOWN + 60,
        what="the ETA task to run twice, to the end",
    )
    figures = report(
        ledger.figures(
            "eta-trap",
            ["eta-trap"],
            notes=f"countdown {COUNTDOWN} s > visibility timeout {VISIBILITY_TIMEOUT} s, "
            "from a sender without the limit",
        )
    )
    # The idempotency key kept the effect single; a task without one would have run its effect twice.
    assert (figures.lost, figures.duplicated) == (0, 0)
    assert figures.executions >= 2

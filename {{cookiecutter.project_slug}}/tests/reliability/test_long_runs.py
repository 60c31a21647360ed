"""RabbitMQ: a run as long as its time limit allows runs once, however long that is.

A Redis broker delivers an unacked message again once its visibility timeout passes, whether or not a worker still
runs it; RabbitMQ delivers it again only when the consumer holding it is gone (its connection closed) or holds it past
the server's ``consumer_timeout`` (check ``celery.E021``). Two workers share the queue here, as replicas do: the idle
one never gets the running task's message.
"""

import pytest

from tests.reliability.deployment import VISIBILITY_TIMEOUT
from tests.support.waiting import wait_until

pytestmark = pytest.mark.reliability

TASK = "reliability.apply_effect"
# Longer than the visibility timeout a Redis broker has in this suite (VISIBILITY_TIMEOUT s): there, it runs twice.
LONG = VISIBILITY_TIMEOUT + 4.0
LIMITS = {"CELERY_TASK_SOFT_TIME_LIMIT": int(LONG) + 10, "CELERY_TASK_TIME_LIMIT": int(LONG) + 15}


def test_a_run_longer_than_a_redis_visibility_timeout_runs_once(deployment, broker, ledger, report):
    workers = deployment.start_workers("worker1", "worker2", concurrency=1, limits=LIMITS)
    keys = ["long-run", *(f"long-run-beside-{number}" for number in range(10))]
    broker.send(TASK, args=[keys[0]], kwargs={"hold_after": LONG})
    (run,) = wait_until(lambda: ledger.runs(keys[0]), timeout=60, what="the long run to start")
    running = deployment.worker_of(run.pid)
    (idle,) = [worker for worker in workers if worker is not running]
    # Sent while it runs: the other worker takes them all (its one process is free), and would take a redelivery too.
    broker.send_many(TASK, [[key] for key in keys[1:]], kwargs={"hold_before": 0.2})
    wait_until(
        lambda: ledger.completed(keys) == len(keys),
        timeout=LONG + 60,
        interval=0.2,
        what=lambda: f"{len(keys)} tasks to complete ({ledger.completed(keys)} did)",
    )
    (only,) = ledger.runs(keys[0])
    assert only.finished_at is not None
    took = only.finished_at - only.started_at
    figures = report(
        ledger.figures(
            "long-run",
            keys,
            notes=(
                f"2 workers; one run of {took:.1f} s, past a Redis broker's visibility timeout here "
                f"({VISIBILITY_TIMEOUT} s), never delivered again"
            ),
        )
    )
    assert took >= LONG > VISIBILITY_TIMEOUT
    assert (figures.lost, figures.duplicated, figures.completed, figures.executions) == (0, 0, len(keys), len(keys))
    # The idle worker ran the others and nothing of the long run's; the running one ran the long run alone.
    assert {run.pid for key in keys[1:] for run in ledger.runs(key)} <= idle.pids()
    # Nothing left to deliver again: the queue's counts (statistics, a moment behind the last ack) settle at 0.
    wait_until(lambda: broker.settled("default"), timeout=30, what="the default queue to settle")

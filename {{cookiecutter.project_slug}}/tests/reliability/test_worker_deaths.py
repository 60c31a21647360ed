"""A worker dies mid-task (its pool child, the whole node, a deploy's SIGTERM): no task is lost or doubled.

Late acks with reject-on-worker-lost bring the message back; idempotent effects keep
the redelivery from applying the effect a second time. Every scenario runs two workers on the
queue, as a deployment with replicas does: the one that dies and one that keeps taking tasks.
"""

import os
import signal
import time

import pytest

from tests.reliability.deployment import TIMEOUTS, VISIBILITY_TIMEOUT
from tests.support.waiting import wait_until

pytestmark = pytest.mark.reliability

TASK = "reliability.apply_effect"
# Long enough for the test to kill the run mid-way, short enough to finish within the soft time limit.
HOLD = 3.0
REDELIVERY_TIMEOUT = VISIBILITY_TIMEOUT + 60.0
# A killed pool child's run goes back to the broker once its worker notices the child gone (on SIGCHLD, at the latest
# when it maintains its pool every 5 s; later on a loaded machine). A hard time limit reached first fails the run with
# TimeLimitExceeded instead, which is not sent back: a fresh-clone CI run's worker noticed after the suite's 6 s limit.
POOL_CHILD_LIMITS = {"CELERY_TASK_SOFT_TIME_LIMIT": 20, "CELERY_TASK_TIME_LIMIT": 25, "CELERY_VISIBILITY_TIMEOUT": 30}


def first_run(ledger, key: str, *, with_effect: bool = False):
    """Wait until the task keyed ``key`` runs (and, if asked, has applied its effect); return that run."""
    run = wait_until(lambda: ledger.runs(key), timeout=60, what=f"a run of {key}")[0]
    if with_effect:
        wait_until(lambda: ledger.effect_count(key), timeout=30, what=f"the effect of {key}")
    return run


def wait_completed(ledger, keys: list[str], timeout: float) -> None:
    wait_until(
        lambda: ledger.completed(keys) == len(keys),
        timeout=timeout,
        interval=0.2,
        what=f"{len(keys)} task(s) to complete",
    )


@pytest.mark.parametrize("phase", ["before-effect", "after-effect"])
def test_pool_child_killed_mid_task_runs_again_and_applies_its_effect_once(deployment, broker, ledger, report, phase):
    workers = deployment.start_workers("worker1", "worker2", limits=POOL_CHILD_LIMITS)
    holds = {"hold_before": HOLD} if phase == "before-effect" else {"hold_after": HOLD}
    broker.send(TASK, args=[f"child-{phase}"], kwargs=holds)

    run = first_run(ledger, f"child-{phase}", with_effect=phase == "after-effect")
    victim = deployment.worker_of(run.pid)
    assert run.pid != victim.pid, "the task ran in the pool child, not the worker's main process"
    os.kill(run.pid, signal.SIGKILL)  # what the OOM killer does
    assert ledger.effect_count(f"child-{phase}") == (1 if phase == "after-effect" else 0)

    wait_completed(ledger, [f"child-{phase}"], timeout=60)
    figures = report(
        ledger.figures(
            f"pool-child-sigkill, {phase.replace('-', ' ')}",
            [f"child-{phase}"],
            notes=f"2 workers; the child of {victim.node} killed",
        )
    )
    assert (figures.lost, figures.duplicated, figures.completed) == (0, 0, 1)
    assert figures.executions == 2, "the killed run was not delivered again"
    # Both workers carried on (the victim replaced its child): no restart, no visibility timeout to wait for.
    assert all(worker.process.poll() is None for worker in workers)
    # Celery requeues the message before it logs the lost child, so the rerun can finish first.
    victim.wait_for_output("WorkerLostError", timeout=10)


{% if cookiecutter.broker == "rabbitmq" -%}
def test_whole_worker_killed_mid_task_is_redelivered_at_once(deployment, broker, ledger, report):
{%- else -%}
def test_whole_worker_killed_mid_task_is_redelivered_after_the_visibility_timeout(deployment, broker, ledger, report):
{%- endif %}
    deployment.start_workers("worker1", "worker2")
    keys = ["node-death", *(f"node-death-after-{number}" for number in range(20))]
    broker.send(TASK, args=[keys[0]], kwargs={"hold_before": HOLD})
    run = first_run(ledger, keys[0])
    doomed = deployment.worker_of(run.pid)
    # Sent while the doomed worker runs: the other worker keeps taking them, before and after the kill.
    broker.send_many(TASK, [[key] for key in keys[1:]], kwargs={"hold_before": 0.2})

    doomed_pids = doomed.pids()
    doomed.kill_group()  # the node dies with its pool: nobody is left to requeue the message
    deployment.start_worker("replacement")
    wait_completed(ledger, keys, timeout=REDELIVERY_TIMEOUT)

    first, second = ledger.runs(keys[0])
    assert first.run_id == run.run_id
    waited = second.started_at - first.started_at
    figures = report(
        ledger.figures(
            "worker-sigkill",
            keys,
            notes=f"2 workers, {doomed.node} killed; redelivered {waited:.1f} s after the first run",
        )
    )
    assert (figures.lost, figures.duplicated, figures.completed) == (0, 0, len(keys))
    # The killed run ran twice, and so may a message its pool finished but had not acked yet.
    ledger.assert_only_killed_runs_repeated(keys, doomed_pids)
{%- if cookiecutter.broker == "rabbitmq" %}
    # RabbitMQ gave the unacked message to the other worker as soon as the dead one's connection closed: sooner than a
    # Redis broker's visibility timeout (shortened to VISIBILITY_TIMEOUT s here) would have let it.
    assert waited < VISIBILITY_TIMEOUT - 1
{%- else %}
    # Redis held the unacked message back until the visibility timeout passed, then redelivered it.
    assert waited >= VISIBILITY_TIMEOUT - 1
{%- endif %}


def test_sigterm_lets_the_running_task_finish_and_nothing_is_redelivered(deployment, broker, ledger, report):
    workers = deployment.start_workers("worker1", "worker2", concurrency=1)
    keys = ["deploy-running", *(f"deploy-queued-{number}" for number in range(1, 7))]
    broker.send(TASK, args=[keys[0]], kwargs={"hold_before": HOLD})
    run = first_run(ledger, keys[0])
    stopping = deployment.worker_of(run.pid)
    (staying,) = [worker for worker in workers if worker is not stopping]
    broker.send_many(TASK, [[key] for key in keys[1:]], kwargs={"hold_before": 0.5})

    stopped_at = time.monotonic()
    stopping.signal(signal.SIGTERM)  # what `docker compose stop` sends
    assert stopping.wait(timeout=TIMEOUTS["CELERY_TASK_SOFT_TIME_LIMIT"] + 30) == 0, stopping.output()
    # Warm shutdown: the running task finished (within its soft limit); the other worker took the queued ones.
    assert ledger.completed(keys[:1]) == 1
    assert time.monotonic() - stopped_at < TIMEOUTS["CELERY_TASK_SOFT_TIME_LIMIT"] + 30

    wait_completed(ledger, keys, timeout=60)
    # Long enough for Redis to redeliver anything left unacked.
    time.sleep(VISIBILITY_TIMEOUT + 2)
    figures = report(
        ledger.figures("worker-sigterm", keys, notes=f"2 workers, {stopping.node} stopped, {staying.node} stayed")
    )
    assert (figures.lost, figures.duplicated, figures.completed) == (0, 0, len(keys))
    assert figures.executions == len(keys), "a task that finished before the shutdown ran again"
    assert staying.process.poll() is None
    assert {other.pid for key in keys[1:] for other in ledger.runs(key)} - {run.pid}, "the staying worker ran none"

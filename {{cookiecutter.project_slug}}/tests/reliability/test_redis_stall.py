"""Redis stalls (alive, answering nothing for seconds) while a task retries and while a task finishes.

The fault managed Redis users see most is not a crash but a stall: a snapshot's fork, a failover under way, a
saturated network. Here the scenario's redis-server is stopped (SIGSTOP) for longer than the socket timeout and
then resumed, at a moment the task chose (it waits for the test's signal in the database, which stays up), on a
plain and on a TLS Redis, with two workers on the queue: no task is lost, and none applies its effect twice.
"""

import time

import pytest

from tests.reliability.broker import Broker
from tests.support.certificates import make_server_tls
from tests.support.django_process import WaitingProcess
from tests.support.waiting import wait_until
from tools.redis_server import RedisServer

pytestmark = pytest.mark.reliability

# Longer than the broker's 1.5 s socket timeout and than a web request's publish bound (under 5 s); shorter than a
# worker's (WORKER_BROKER_CONNECTION_TIMEOUT, WORKER_PUBLISH_RETRY_POLICY: 15.1 s, measured below).
STALL = 4.0
SHAPES = {"plain": "plain Redis", "tls": "TLS Redis"}
# The workers' limits here: a run waits for the test's signal, then for the stall, within its soft limit (the
# suite's 5 s is too short for that); the visibility timeout stays above the hard limit (check celery.E001).
LIMITS = {"CELERY_TASK_SOFT_TIME_LIMIT": 30, "CELERY_TASK_TIME_LIMIT": 35, "CELERY_VISIBILITY_TIMEOUT": 40}
VISIBILITY_TIMEOUT = LIMITS["CELERY_VISIBILITY_TIMEOUT"]
# What a web request's send may take against a Redis that does not answer (tests/taskqueue/test_enqueue_timeouts.py).
WEB_BOUND = 5.0

# A web request, in a web process of its own (tests/support/django_process.py): sent when the test writes the task's
# key, answered with the status and how long it took.
WEB_REQUEST = """
import json, sys, time
from django.test import Client, override_settings
key = sys.stdin.readline().strip()
started = time.monotonic()
with override_settings(ROOT_URLCONF="tests.reliability.enqueue_urls"):
    response = Client(raise_request_exception=False).get(f"/enqueue/{key}/")
print(json.dumps({"status": response.status_code, "seconds": time.monotonic() - started}), flush=True)
"""


@pytest.fixture(params=["plain", "tls"])
def broker(request, tmp_path_factory):
    tls = make_server_tls(tmp_path_factory.mktemp("redis-tls")) if request.param == "tls" else None
    broker = Broker(RedisServer(tls=tls))
    broker.shape = request.param
    yield broker
    broker.stop()


def settle(broker: Broker, ledger, key: str, timeout: float) -> list:
    """Wait until the task completed and Redis holds none of the queue's messages; return the task's runs."""
    wait_until(lambda: ledger.completed([key]) == 1, timeout=timeout, interval=0.2, what="the task to complete")
    wait_until(lambda: broker.settled("default"), timeout=timeout, what="no message left queued, claimed or unacked")
    return ledger.runs(key)


def report_applied_once(report, ledger, key: str, scenario: str, notes: str) -> None:
    figures = report(ledger.figures(scenario, [key], notes=notes))
    assert (figures.lost, figures.duplicated, figures.completed) == (0, 0, 1)


def test_a_retry_published_while_redis_stalls_runs_and_applies_its_effect_once(deployment, broker, ledger, report):
    deployment.start_workers("worker1", "worker2", limits=LIMITS)
    task, key = "reliability.apply_effect_after_a_retry", f"stall-retry-{broker.shape}"
    broker.send(task, args=[key], kwargs={"wait_for": f"{key}:stalled"})
    wait_until(lambda: ledger.runs(key), timeout=60, what="the first run")
    with broker.stalled():
        ledger.raise_signal(f"{key}:stalled")  # the run now asks for its retry, and the publish meets the stall
        time.sleep(STALL)  # the fault itself: Redis answers nothing this long
    runs = settle(broker, ledger, key, timeout=VISIBILITY_TIMEOUT + 30)
    report_applied_once(
        report,
        ledger,
        key,
        f"redis-stall during a retry, {SHAPES[broker.shape]}",
        notes=f"2 workers; Redis stopped {STALL:.0f} s as the retry was published; "
        f"{len(runs) - 1} run(s) of the retry",
    )
    # The worker's publish waited the stall out: the retry ran; the original message was not run again.
    assert [run.task_id.rsplit(":", 1)[1] for run in runs][:1] == ["0"]
    assert all(run.task_id.endswith(":1") for run in runs[1:]), runs
    assert broker.client.hgetall("metrics:task:retry_unpublished") == {}


def test_a_task_finishing_while_redis_stalls_applies_its_effect_once(deployment, broker, ledger, report):
    deployment.start_workers("worker1", "worker2", limits=LIMITS)
    task, key = "reliability.apply_effect_when_signalled", f"stall-ack-{broker.shape}"
    broker.send(task, args=[key, f"{key}:stalled"])
    wait_until(lambda: ledger.runs(key), timeout=60, what="the run")
    with broker.stalled():
        ledger.raise_signal(f"{key}:stalled")
        wait_until(lambda: ledger.completed([key]) == 1, timeout=30, what="the run to finish while Redis stalls")
        time.sleep(STALL)  # its ack meets the stall
    settle(broker, ledger, key, timeout=VISIBILITY_TIMEOUT + 60)
    wait_until(lambda: all(run.finished_at for run in ledger.runs(key)), timeout=30, what="every run of it finished")
    runs = ledger.runs(key)
    report_applied_once(
        report,
        ledger,
        key,
        f"redis-stall as a task finishes, {SHAPES[broker.shape]}",
        notes=f"2 workers; Redis stopped {STALL:.0f} s as the run ended and was acked; {len(runs)} run(s)",
    )


def test_a_web_request_enqueueing_while_redis_stalls_answers_in_time_and_the_task_runs_once(
    deployment, broker, ledger, report
):
    deployment.start_workers("worker1", "worker2", limits=LIMITS)
    key = f"stall-web-{broker.shape}"
    first, again = WaitingProcess(WEB_REQUEST, deployment.env()), WaitingProcess(WEB_REQUEST, deployment.env())
    try:
        first.wait_ready()
        again.wait_ready()
        with broker.stalled():
            during = first.ask(key)
        # The client is told to try again, and does: the same task, enqueued a second time, once Redis answers.
        after = again.ask(key)
    finally:
        first.close()
        again.close()
    assert during["status"] == 503, during
    assert during["seconds"] < WEB_BOUND, during
    assert after["status"] == 200, after
    runs = settle(broker, ledger, key, timeout=VISIBILITY_TIMEOUT + 30)
    report_applied_once(
        report,
        ledger,
        key,
        f"redis-stall as a web request enqueues, {SHAPES[broker.shape]}",
        notes=f"503 in {during['seconds']:.1f} s during the stall, the client's second request 200; "
        f"{len(runs)} run(s)",
    )


@pytest.mark.parametrize("broker", ["plain"], indirect=True)
def test_a_retry_not_published_within_the_workers_bound_goes_back_to_its_queue(deployment, broker, ledger, report):
    workers = deployment.start_workers("worker1", "worker2", limits=LIMITS)
    task, key = "reliability.apply_effect_after_a_retry", "stall-past-the-bound"
    broker.send(task, args=[key], kwargs={"wait_for": f"{key}:stalled"})
    wait_until(lambda: ledger.runs(key), timeout=60, what="the first run")
    with broker.stalled():
        ledger.raise_signal(f"{key}:stalled")
        stalled_at = time.monotonic()
        # Redis stays stopped until the worker gives the publish up (WORKER_PUBLISH_RETRY_POLICY's bound).
        wait_until(
            lambda: any("could not be published" in worker.output() for worker in workers),
            timeout=60,
            what="the worker to give the retry's publish up",
        )
        gave_up_after = time.monotonic() - stalled_at
    runs = settle(broker, ledger, key, timeout=VISIBILITY_TIMEOUT + 60)
    report_applied_once(
        report,
        ledger,
        key,
        "redis-stall past a worker's publish bound during a retry, plain Redis",
        notes=f"the publish given up {gave_up_after:.1f} s into the stall, the message returned to its queue; "
        f"{len(runs)} run(s)",
    )
    # The original message ran again (retries 0) after it was returned; then its retry ran.
    assert [run.task_id.rsplit(":", 1)[1] for run in runs][:2] == ["0", "0"], runs
    assert "goes back to the queue and the task runs again" in "".join(worker.output() for worker in workers)
    assert broker.client.hgetall("metrics:task:retry_unpublished") == {f"{task}|kept".encode(): b"1"}
    # The worker waited longer than a web request would have, and gave up within the task's soft limit.
    assert WEB_BOUND < gave_up_after < LIMITS["CELERY_TASK_SOFT_TIME_LIMIT"]

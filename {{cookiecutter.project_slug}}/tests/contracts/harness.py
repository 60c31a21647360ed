"""The delivery-contract harness: a task of the project, on real workers, under each fault of its contract.

A contract (``{{ cookiecutter.project_slug }}/taskqueue/contracts.py``) names the task, one call and how to count
that call's effect; ``contract_tests(contract)`` turns it into one test per fault, in the reliability marker
(``make reliability``, the CI's reliability job). Each test:

1. starts a broker of its own (tests/reliability/broker.py) and two workers of the task's queue, from the Procfile
   line that consumes it (prefork or threads, as deployed), on the test database, with tests/contracts/faults.py
   loaded;
2. creates the call's arguments and checks that its effect counts 0;
3. sends the call (twice, same message, for ``duplicate``) and applies the fault at its moment;
4. waits, at most SETTLE_TIMEOUT, until nothing is queued, unacked or running;
5. asserts that a run completed, that the effect counts exactly 1, and that no dead letter was recorded; a failure
   names the fault, what went wrong (LOST, DUPLICATED, a dead letter) and every run.
"""

import email
import email.utils
import json
import shlex
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.taskqueue.contracts import FAULTS, DeliveryContract
from {{ cookiecutter.project_slug }}.taskqueue.models import FailedTask
from {{ cookiecutter.project_slug }}.taskqueue.process_definitions import option_value, procfile_commands
from {{ cookiecutter.project_slug }}.taskqueue.sending import routed_queue
from tests.reliability.broker import Broker
from tests.reliability.deployment import TIMEOUTS, Deployment, Node
from tests.support.database import database_url
from tests.support.waiting import wait_until
from tools.procfile import PROCFILE

{% if cookiecutter.broker == "rabbitmq" -%}
# How long RabbitMQ answers nothing in the stall faults: its VM stopped, longer than the 2 s connect timeout, shorter
# than a worker's publish bound (WORKER_BROKER_CONNECTION_TIMEOUT, 15 s).
{%- else -%}
# How long Redis answers nothing in the stall faults: longer than the broker's 1.5 s socket timeout, shorter than a
# worker's publish bound (15.1 s in tests/reliability/test_redis_stall.py).
{%- endif %}
STALL = 4.0
# Production's limits, shortened so that a whole worker's death is redelivered in seconds (TIMEOUTS); the faults that
# hold a run while they happen get more room, so that the hold and the stall fit in the soft limit.
HOLDING_LIMITS = {
    **TIMEOUTS,
    "CELERY_TASK_SOFT_TIME_LIMIT": 15,
    "CELERY_TASK_TIME_LIMIT": 18,
    "CELERY_VISIBILITY_TIMEOUT": 20,
}
HOLDING = {"sigterm", "{{ cookiecutter.broker }}-restart", "{{ cookiecutter.broker }}-stall", "{{ cookiecutter.broker }}-stall-retry"}
SETTLE_TIMEOUT = 90.0
STARTUP_TIMEOUT = 90.0
# The io worker's soft shutdown window for the sigterm fault (production's is 65 s).
SOFT_SHUTDOWN_WINDOW = 10
# The filebased email backend's separator after each message.
EMAIL_SEPARATOR = b"\n" + b"-" * 79 + b"\n"

# Where the running contract test's workers write their emails (config/settings/test.py TEST_EMAIL_OUTBOX).
_outbox: Path | None = None


def emails_sent(to: str) -> int:
    """How many emails the running contract test's workers sent to the address ``to``: the effect of a task whose
    work is an email (``effect=lambda user_id: emails_sent(to=User.objects.get(pk=user_id).email)``)."""
    if _outbox is None:
        raise RuntimeError("emails_sent() counts a running contract test's emails: call it from a contract's effect")
    sent = 0
    for path in sorted(_outbox.glob("*.log")):
        for message in path.read_bytes().split(EMAIL_SEPARATOR):
            if message.strip():
                recipients = email.message_from_bytes(message).get_all("To", [])
                sent += any(address == to for _, address in email.utils.getaddresses(recipients))
    return sent


def contract_tests(contract: DeliveryContract) -> Callable[..., None]:
    """One test per fault of ``contract``: assign it to a ``test_...`` name in a test module."""

    @pytest.mark.reliability
    @pytest.mark.django_db(transaction=True)
    @pytest.mark.parametrize("fault", contract.faults)
    def test_delivery_contract(fault: str, tmp_path: Path) -> None:
        check(contract, fault, tmp_path)

    return test_delivery_contract


def worker_process(queue: str) -> str:
    """The Procfile process that consumes ``queue``."""
    for name, command in procfile_commands(PROCFILE).items():
        if option_value(shlex.split(command), "-Q", "--queues") == queue:
            return name
    raise AssertionError(f"No Procfile process consumes the queue {queue!r}")


class Run:
    """What the workers reported (tests/contracts/faults.py's events.jsonl)."""

    def __init__(self, directory: Path):
        self.path = directory / "events.jsonl"

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        events = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        return [event for event in events if kind is None or event["event"] == kind]

    def in_flight(self) -> bool:
        """A run started and not ended in a process that is still alive."""
        open_runs: dict[tuple[int, str], int] = {}
        for event in self.events():
            key = (event["pid"], event.get("task_id", ""))
            if event["event"] == "start":
                open_runs[key] = open_runs.get(key, 0) + 1
            elif event["event"] == "end":
                open_runs[key] = open_runs.get(key, 0) - 1
        return any(count > 0 and Path(f"/proc/{pid}").exists() for (pid, _), count in open_runs.items())

    def retries_owed(self) -> list[int]:
        """The retries announced by a run that ended in RETRY and not started yet. Counted, not read off the last end:
        the retried run can end first (a fresh-clone CI run: a retry sent during a Redis stall ran on the other
        worker and succeeded before the run that sent it recorded its own end)."""
        started = {event.get("retries", 0) for event in self.events("start")}
        return [
            event["retries"] + 1
            for event in self.events("end")
            if event.get("state") == "RETRY" and event["retries"] + 1 not in started
        ]

    def summary(self) -> str:
        return "; ".join(
            f"{event['event']} pid {event['pid']}"
            + (f" retries {event['retries']}" if "retries" in event else "")
            + (f" {event['state']}" if "state" in event else "")
            + (f" {event['fault']}" if "fault" in event else "")
            for event in self.events()
        )


def check(contract: DeliveryContract, fault: str, directory: Path, include: tuple[str, ...] = ()) -> None:
    """Run ``contract``'s call under ``fault``; ``include``: more modules for the workers (the harness's own tests)."""
    task = contract.task
    queue = routed_queue(task.name)
    limits = HOLDING_LIMITS if fault in HOLDING else TIMEOUTS
    {%- if cookiecutter.broker == "rabbitmq" %}
    # A node of its own for the faults that restart or stall it; a virtual host of a shared one for the others.
    broker = Broker(shared=not fault.startswith("rabbitmq-"))
    {%- else %}
    broker = Broker()
    {%- endif %}
    env = {
        "CELERY_WORKER_INCLUDE": ",".join(("tests.contracts.faults", *include)),
        "CONTRACT_FAULT": fault,
        "CONTRACT_TASK": task.name,
        "CONTRACT_DIR": str(directory),
        "CELERY_DEFAULT_CONCURRENCY": "2",
        "CELERY_CPU_CONCURRENCY": "2",
        "CELERY_IO_CONCURRENCY": "4",
        "CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT": str(SOFT_SHUTDOWN_WINDOW),
        "TEST_EMAIL_OUTBOX": str(directory / "outbox"),
        **{name: str(value) for name, value in limits.items()},
        **broker.env,
    }
    deployment = Deployment(broker.redis_url, database_url(), directory, extra_env=env)
    run = Run(directory)
    passed = False
    global _outbox
    _outbox = directory / "outbox"
    try:
        process = worker_process(queue)

        def start_worker(node: str) -> Node:
            return deployment.start(process, node, deployment.env(), f"-n {node}@%h")

        workers = [start_worker("one"), start_worker("two")]
        for worker in workers:
            deployment.wait_ready(worker)
        args, kwargs = contract.call()
        before = contract.effect(*args, **kwargs)
        assert before == 0, f"{task.name}: the effect counts {before} before the task ran: count this call's only"

        started = time.monotonic()
        task_id = uuid.uuid4().hex
        with celery_app.connection_for_write(broker.url, ssl=broker.ssl) as connection:
            for _ in range(2 if fault == "duplicate" else 1):
                task.apply_async(args, kwargs, task_id=task_id, connection=connection)
        apply(fault, broker, deployment, run, start_worker)
        settle(broker, queue, run, timeout=SETTLE_TIMEOUT + limits["CELERY_VISIBILITY_TIMEOUT"])
        took = time.monotonic() - started

        applied = contract.effect(*args, **kwargs)
        succeeded = [event for event in run.events("end") if event["state"] == "SUCCESS"]
        dead_letters = list(FailedTask.objects.filter(task_name=task.name).values_list("exception", "message"))
        problems = []
        if applied == 0:
            problems.append(
                "LOST: its effect was never applied"
                + (", although a run reported SUCCESS (does it swallow an error?)" if succeeded else "")
            )
        if applied > 1:
            problems.append(f"DUPLICATED: its effect was applied {applied} times")
        if dead_letters:
            exception, message = dead_letters[0]
            problems.append(f"it became a dead letter: {exception}: {message[:300]}")
            if "TASK_MAX_COUNTDOWN" in message:
                problems.append(
                    f"the harness runs with TASK_MAX_COUNTDOWN={TIMEOUTS['TASK_MAX_COUNTDOWN']} s: retry with "
                    "retry_backoff=True, whose first retry waits at most 1 s"
                )
        if not succeeded:
            problems.append("no run completed")
        print(
            f"CONTRACT {task.name} {fault}: applied={applied} runs={len(run.events('start'))} settled in {took:.1f} s"
        )
        assert not problems, (
            f"{task.name}({args}, {kwargs}) under the fault {fault!r} ({FAULTS[fault]}): "
            + "; ".join(problems)
            + f". Runs: {run.summary()}"
        )
        passed = True
    finally:
        _outbox = None
        deployment.kill_all()
        if not passed:
            print(deployment.logs())
        deployment.remove_logs()
        broker.stop()


def apply(fault: str, broker: Broker, deployment: Deployment, run: Run, start_worker: Callable[[str], Node]) -> None:
    """Apply ``fault`` at its moment (the kills and the database error are applied inside the workers)."""
    if fault.startswith("kill-"):
        killed = wait_until(lambda: run.events("fault"), timeout=60, what="the kill")[0]["pid"]
        dead = [node for node in deployment.processes if node.process is not None and node.process.pid == killed]
        if dead:
            # A threads worker dies whole (a prefork worker loses a child and replaces it): it is restarted, as its
            # container or Deployment would be; its unacked message is redelivered after the visibility timeout.
            dead[0].wait(timeout=30)
            deployment.wait_ready(start_worker("replacement"))
        return
    if fault not in HOLDING:
        return
    held = wait_until(lambda: run.events("held"), timeout=60, what="the run to start (held for the fault)")[0]
    release = Path(run.path.parent / "release")
    if fault == "sigterm":
        worker: Node = deployment.worker_of(held["pid"])
        worker.signal(signal.SIGTERM)  # what a deploy sends
        release.touch()
        worker.wait(timeout=TIMEOUTS["CELERY_TASK_TIME_LIMIT"] + SOFT_SHUTDOWN_WINDOW + 30)
    elif fault == "{{ cookiecutter.broker }}-restart":
        broker.restart()
        release.touch()
    else:
        with broker.stalled():
            release.touch()
            time.sleep(STALL)  # the fault itself: {{ 'RabbitMQ' if cookiecutter.broker == 'rabbitmq' else 'Redis' }} answers nothing this long


def settle(broker: Broker, queue: str, run: Run, timeout: float) -> None:
    def quiet() -> bool:
        try:
            ends = run.events("end")
            # A run that ended in RETRY owes another run: its message waits out the countdown first.
            return bool(ends) and not run.retries_owed() and not run.in_flight() and broker.settled(queue)
        except broker.errors:
            return False

    def seen() -> str:
        try:
            held = f"the broker holds {broker.held(queue)} message(s) of {queue}"
        except broker.errors as exc:
            held = f"the broker does not answer ({exc})"
        in_flight = "a run in flight" if run.in_flight() else "no run in flight"
        owed = f"retries {run.retries_owed()} announced and not started" if run.retries_owed() else "no retry owed"
        runs = run.summary() or "none"
        return f"nothing queued, being claimed, unacked or running; {held}, {in_flight}, {owed}; runs: {runs}"

    wait_until(quiet, timeout=timeout, interval=0.2, what=seen)

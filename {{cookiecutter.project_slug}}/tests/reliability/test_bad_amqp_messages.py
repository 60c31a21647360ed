"""Bad input on RabbitMQ: messages no worker can run are logged once and kept as dead letters, and the worker
carries on.

Each is published to the tasks exchange as a buggy or foreign producer could: raw bytes, a message without Celery's
headers, a task no worker knows, a serializer the workers refuse (pickle), and one larger than the project's senders
accept. Celery rejects most of them, so RabbitMQ dead-letters them; an undecodable body it would ack and lose, which
the project's consumer rejects too (taskqueue/patches/celery_worker.py).
"""

import json
import uuid

import pytest
from django.conf import settings

from tests.reliability import tasks
from tests.reliability.deployment import assert_no_crash_loop
from tests.support.dead_letter_queue import dead_letters
from tests.support.waiting import wait_until

pytestmark = pytest.mark.reliability


def task_headers(task: str) -> dict:
    """Celery's message protocol 2 headers for ``task``, with a fresh id."""
    task_id = str(uuid.uuid4())
    return {"lang": "py", "task": task, "id": task_id, "root_id": task_id, "retries": 0}


def task_body(*args, **kwargs) -> bytes:
    return json.dumps([args, kwargs, {}]).encode()


# Each bad message: its body, headers and content type, and the line the worker must log for it.
UNDECODABLE = "Rejected the undecodable message: RabbitMQ keeps it in the dead-letter queue."
BAD_MESSAGES = {
    "a task whose body is not JSON": (
        b"{not json", task_headers(tasks.apply_effect.name), "application/json", UNDECODABLE,
    ),
    "bytes without Celery's headers": (b"{this is not json", {}, "application/json", UNDECODABLE),
    "JSON without Celery's headers": (
        b'{"body": "x"}', {}, "application/json", "Received and deleted unknown message",
    ),
    "an unknown task": (
        task_body("x"), task_headers("nobody.knows_this_task"), "application/json",
        "Received unregistered task of type 'nobody.knows_this_task'",
    ),
    "a pickled task": (
        b"\x80\x04N.", task_headers(tasks.apply_effect.name), "application/x-python-serialize",
        "Refusing to deserialize untrusted content of type pickle",
    ),
}  # fmt: skip


def test_malformed_unknown_and_oversized_amqp_messages_are_dead_letters_and_the_worker_keeps_running(
    deployment, broker, ledger, report
):
    worker = deployment.start_worker()
    for body, headers, content_type, _ in BAD_MESSAGES.values():
        broker.push_raw("default", body, headers=headers, content_type=content_type)
    # Twice the size the project's senders accept (taskqueue/message_limits.py): only a foreign producer gets it here.
    oversize = "x" * (2 * settings.TASK_MAX_MESSAGE_BYTES)
    broker.push_raw("default", task_body("oversize", padding=oversize), headers=task_headers(tasks.apply_effect.name))
    broker.send(tasks.apply_effect.name, args=["after-bad-input"])

    wait_until(
        lambda: ledger.completed(["after-bad-input", "oversize"]) == 2, timeout=60, what="the tasks among the bad ones"
    )
    for what, (_, _, _, log_line) in BAD_MESSAGES.items():
        assert log_line in worker.output(), f"nothing logged for {what}"
    rejected = len(BAD_MESSAGES)
    wait_until(
        lambda: broker.queued("dead-letters") == rejected,
        timeout=30,
        what=lambda: f"{rejected} dead letters, {broker.queued('dead-letters')} in the dead-letter queue",
    )
    kept = dead_letters(broker.url)
    figures = report(
        ledger.figures(
            "bad-input",
            ["after-bad-input"],
            notes=f"after {len(BAD_MESSAGES)} bad messages (each logged, {len(kept)} dead letters) and a "
            f"{len(oversize) // 1_000_000} MB one (run: only senders are limited)",
        )
    )
    assert (figures.completed, figures.lost, figures.duplicated) == (1, 0, 0)
    assert [(letter["reason"], letter["queue"]) for letter in kept] == [("rejected", "default")] * rejected
    assert_no_crash_loop(worker, broker)

"""Bad input at the edges: messages no worker can run are logged and discarded, and the worker carries on."""

import base64
import json
import uuid

import pytest
from django.conf import settings

from tests.reliability import tasks
from tests.reliability.deployment import assert_no_crash_loop
from tests.support.waiting import wait_until

pytestmark = pytest.mark.reliability


def envelope(task: str, body: bytes, *, encoded_body: str | None = None) -> bytes:
    """A message as kombu's Redis transport stores it, written by hand (as a foreign producer would)."""
    task_id = str(uuid.uuid4())
    return json.dumps(
        {
            "body": base64.b64encode(body).decode() if encoded_body is None else encoded_body,
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"lang": "py", "task": task, "id": task_id, "root_id": task_id, "retries": 0},
            "properties": {
                "correlation_id": task_id,
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": "default"},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
    ).encode()


def task_body(*args, **kwargs) -> bytes:
    return json.dumps([args, kwargs, {}]).encode()


# What each bad message must make the worker log: it says what was wrong with which message.
BAD_MESSAGES = {
    "not JSON": (b"{this is not json", "Dropped a malformed message from the broker"),
    "JSON, not a message": (b'{"body": "x"}', "Dropped a malformed message from the broker"),
    "a body that is not base64": (
        envelope(tasks.apply_effect.name, b"", encoded_body="!! not base64"),
        "Dropped a malformed message from the broker",
    ),
    "a body that is not JSON": (envelope(tasks.apply_effect.name, b"{not json"), "Can't decode message body"),
    "an unknown task": (
        envelope("nobody.knows_this_task", task_body("x")),
        "Received unregistered task of type 'nobody.knows_this_task'",
    ),
}


def test_malformed_unknown_and_oversized_messages_are_logged_and_the_worker_keeps_running_tasks(
    deployment, broker, ledger, report
):
    worker = deployment.start_worker()
    for raw, _ in BAD_MESSAGES.values():
        broker.push_raw("default", raw)
    # Twice the size the project's senders accept (taskqueue/message_limits.py): only a foreign producer gets it here.
    oversize = "x" * (2 * settings.TASK_MAX_MESSAGE_BYTES)
    broker.push_raw("default", envelope(tasks.apply_effect.name, task_body("oversize", padding=oversize)))
    broker.send(tasks.apply_effect.name, args=["after-bad-input"])

    wait_until(
        lambda: ledger.completed(["after-bad-input", "oversize"]) == 2, timeout=60, what="the tasks among the bad ones"
    )
    for what, (_, log_line) in BAD_MESSAGES.items():
        assert log_line in worker.output(), f"nothing logged for {what}"
    figures = report(
        ledger.figures(
            "bad-input",
            ["after-bad-input"],
            notes=f"after {len(BAD_MESSAGES)} bad messages (each logged and discarded) and a "
            f"{len(oversize) // 1_000_000} MB one (run: only senders are limited)",
        )
    )
    assert (figures.completed, figures.lost, figures.duplicated) == (1, 0, 0)
    assert_no_crash_loop(worker, broker)

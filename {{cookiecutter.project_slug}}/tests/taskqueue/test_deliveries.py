"""Redeliveries of a message are counted; past max_deliveries runs it is poison and is not run.

A real prefork worker killed by such a message, again and again: tests/reliability/test_poison_message.py.
"""

import uuid

import pytest

from {{ cookiecutter.project_slug }}.taskqueue.deliveries import PoisonMessageError
from tests.taskqueue.tasks import add


class Message:
    """One message of `add`, run by BaseTask's hooks as a worker runs them (before_start, after_return)."""

    def __init__(self, retries: int = 0):
        self.task_id = str(uuid.uuid4())
        self.retries = retries
        self.deliveries = 0

    def run_starts(self) -> None:
        # kombu marks a message it puts back on the queue (its worker died) as redelivered.
        self.deliveries += 1
        add.push_request(id=self.task_id, retries=self.retries, delivery_info={"redelivered": self.deliveries > 1})
        try:
            add.before_start(self.task_id, (1, 2), {})
        finally:
            add.pop_request()

    def run_ends(self) -> None:
        add.push_request(id=self.task_id, retries=self.retries, delivery_info={"redelivered": self.deliveries > 1})
        try:
            add.after_return("SUCCESS", 3, self.task_id, (1, 2), {}, None)
        finally:
            add.pop_request()


def test_a_message_runs_up_to_max_deliveries_times_then_is_refused_as_poison():
    message = Message()
    for _ in range(add.max_deliveries):
        message.run_starts()
    with pytest.raises(PoisonMessageError, match=f"delivered {add.max_deliveries + 1} times"):
        message.run_starts()


def test_a_retry_is_a_new_message_with_a_count_of_its_own():
    message = Message()
    for _ in range(add.max_deliveries):
        message.run_starts()
    retry = Message(retries=1)
    retry.task_id = message.task_id
    for _ in range(add.max_deliveries):
        retry.run_starts()


def test_a_run_that_ends_clears_the_count():
    message = Message()
    for _ in range(add.max_deliveries):
        message.run_starts()
    message.run_ends()
    message.run_starts()

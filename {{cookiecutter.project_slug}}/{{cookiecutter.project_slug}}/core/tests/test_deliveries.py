"""Each run of a message is counted; past max_deliveries the message is poison and is not run (core/deliveries.py).

A real worker process killed by such a message: reliability/test_poison_message.py.
"""

import uuid

import pytest
from django.core.cache import cache

from {{ cookiecutter.project_slug }}.core.deliveries import PoisonMessageError, count_delivery, forget_deliveries
from {{ cookiecutter.project_slug }}.core.models import FailedTask
from {{ cookiecutter.project_slug }}.core.tests.tasks import add, record_delivery
from {{ cookiecutter.project_slug }}.testing.waiting import wait_until


class Message:
    """One message of a task, as the worker's hooks see it (BaseTask.before_start and after_return)."""

    def __init__(self, task=add, retries: int = 0):
        self.task = task
        self.task_id = str(uuid.uuid4())
        self.retries = retries

    def run_starts(self) -> None:
        self.task.push_request(id=self.task_id, retries=self.retries)
        try:
            count_delivery(self.task)
        finally:
            self.task.pop_request()

    def run_ends(self) -> None:
        self.task.push_request(id=self.task_id, retries=self.retries)
        try:
            forget_deliveries(self.task)
        finally:
            self.task.pop_request()


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
    retry.run_starts()


def test_a_run_that_ends_clears_the_count():
    message = Message()
    for _ in range(add.max_deliveries):
        message.run_starts()
    message.run_ends()
    message.run_starts()


@pytest.mark.django_db(transaction=True)
def test_the_worker_fails_a_message_past_max_deliveries_as_a_dead_letter_without_running_it(celery_worker):
    message = Message(record_delivery)
    for _ in range(record_delivery.max_deliveries):
        message.run_starts()  # as if each of these runs had died with its process
    record_delivery.apply_async(("poison", {}), task_id=message.task_id)
    failed = wait_until(
        lambda: FailedTask.objects.filter(task_id=message.task_id).first(), timeout=30, what="the dead letter"
    )
    assert failed.exception == "PoisonMessageError"
    assert cache.get("delivery:poison") is None, "the poison message ran"

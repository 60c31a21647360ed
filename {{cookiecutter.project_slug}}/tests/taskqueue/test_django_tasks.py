"""Django's tasks (``@task``, ``.enqueue()``) on the project's Celery workers: sent on commit, routed to the queue they
name, arguments checked as JSON, failures dead-lettered and counted, results read from Celery's result backend."""

from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.checks import run_checks
from django.db import transaction
from django.test import Client, override_settings
from django.utils import timezone

from {{ cookiecutter.project_slug }}.taskqueue import dead_letters
from {{ cookiecutter.project_slug }}.taskqueue.django_tasks_api import (
    InvalidTaskError,
{%- if cookiecutter.result_backend != "none" %}
    TaskResultDoesNotExist,
{%- endif %}
    TaskResultStatus,
    task_backends,
)
from {{ cookiecutter.project_slug }}.taskqueue.message_limits import CountdownTooLongError
from {{ cookiecutter.project_slug }}.taskqueue.models import FailedTask
from {{ cookiecutter.project_slug }}.taskqueue.task_backend import (
    RUNNER,
    CeleryBackend,
    TaskArgumentsError,
{%- if cookiecutter.result_backend == "none" %}
    TaskResultsDisabledError,
{%- endif %}
)
from tests.support.task_events import TaskEvent, TaskEvents
from tests.support.waiting import wait_until
from tests.taskqueue.django_task_functions import add_and_record, fail_on_purpose
from tests.taskqueue.test_metrics import scrape, value

pytestmark = pytest.mark.django_db(transaction=True)

ADD_AND_RECORD = "tests.taskqueue.django_task_functions.add_and_record"


def published(task_events: TaskEvents, task_id: str) -> list[TaskEvent]:
    return task_events.of(RUNNER, "published", task_id=task_id)


@override_settings(ROOT_URLCONF="tests.taskqueue.django_task_urls")
def test_a_request_whose_transaction_rolls_back_never_sends_its_task(client: Client, task_events: TaskEvents) -> None:
    response = client.get("/django-task/", {"marker": "rolled-back", "outcome": "rollback"})
    assert response.json()["committed"] is False
    # The send would have happened in the request (on commit), before the response: none did.
    assert published(task_events, response.json()["id"]) == []
    assert task_events.of(RUNNER, "published") == []
{%- if cookiecutter.result_backend != "none" %}
    with pytest.raises(TaskResultDoesNotExist):
        add_and_record.get_result(response.json()["id"])
{%- endif %}


@override_settings(ROOT_URLCONF="tests.taskqueue.django_task_urls")
@pytest.mark.parametrize("queue", ["default", "cpu"])
def test_a_request_whose_transaction_commits_runs_its_task_on_the_worker_of_its_queue(
    client: Client, celery_workers: dict[str, Any], task_events: TaskEvents, queue: str
) -> None:
    marker = f"committed-{queue}"
    response = client.get("/django-task/", {"marker": marker, "queue": queue})
    task_id = response.json()["id"]
    assert [event.queue for event in published(task_events, task_id)] == [queue]

    ran = wait_until(lambda: cache.get(f"django-task:{marker}"), what=f"the Django task on {queue}")
    assert ran["attempt"] == 1
    # Taken from its queue by the worker consuming it (each in-process worker consumes one queue).
    assert [event.queue for event in task_events.of(RUNNER, "started", task_id=task_id)] == [queue]
{%- if cookiecutter.result_backend != "none" %}
    result = wait_until(
        lambda: (found := add_and_record.get_result(task_id)).is_finished and found, what="the result to be stored"
    )
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, 5)
    assert (result.args, result.kwargs, result.task.func) == ([marker, 2, 3], {}, add_and_record.func)
    assert result.worker_ids == [ran["worker"]]
    assert result.enqueued_at is not None
    assert result.finished_at is not None
{%- else %}
    task_events.wait_for(RUNNER, "succeeded")
{%- endif %}


def test_inside_an_atomic_block_the_task_is_sent_only_once_it_commits(
    celery_workers: dict[str, Any], task_events: TaskEvents
) -> None:
    with transaction.atomic():
        result = add_and_record.enqueue("on-commit", 1, 1)
        assert result.status == TaskResultStatus.READY
        assert (published(task_events, result.id), result.enqueued_at) == ([], None)
    assert [event.queue for event in published(task_events, result.id)] == ["default"]
    assert result.enqueued_at is not None
    wait_until(lambda: cache.get("django-task:on-commit"), what="the Django task to run")


def test_a_queue_celery_does_not_declare_is_refused(task_events: TaskEvents) -> None:
    with pytest.raises(InvalidTaskError, match=r"queue 'emails' is not a Celery queue of this project"):
        add_and_record.using(queue_name="emails").enqueue("undeclared", 1, 2)
    assert task_events.of(RUNNER, "published") == []


def test_a_queue_whose_worker_enforces_no_time_limit_is_refused(task_events: TaskEvents) -> None:
    # The io worker runs threads (Procfile): nothing would bound a Django task's run there.
    with pytest.raises(InvalidTaskError, match=r"queue 'io' is consumed by a worker that enforces no time limit"):
        add_and_record.using(queue_name="io").enqueue("unbounded", 1, 2)
    assert task_events.of(RUNNER, "published") == []


def test_the_system_checks_name_a_backend_queue_undeclared_or_without_time_limits() -> None:
    backend = CeleryBackend("default", {"QUEUES": ["default", "emails", "io"]})
    assert [(error.id, error.msg.split("queue ")[1][:8]) for error in backend.check()] == [
        ("celery.E013", "'emails'"),
        ("celery.E014", "'io', wh"),
    ]
    assert task_backends["default"].queues == {"default", "cpu"}
    assert list(task_backends["default"].check()) == []
    # `manage.py check` runs them (django_tasks' check, Django's own on 6.0).
    backend_path = "{{ cookiecutter.project_slug }}.taskqueue.task_backend.CeleryBackend"
    with override_settings(TASKS={"default": {"BACKEND": backend_path, "QUEUES": ["default", "emails"]}}):
        assert "celery.E013" in [message.id for message in run_checks()]


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        ((timezone.now(), 1, 2), "must be JSON values"),
        (("nan", float("nan"), 2), "must be JSON values"),
        (("keys", 1, {1: "one"}), "would not arrive as they were given"),
        (("typed", "1", 2), "argument 'left' must be int, got str"),
        (("missing", 1), "missing a required argument: 'right'"),
    ],
)
def test_arguments_json_cannot_carry_or_the_function_does_not_accept_are_refused(
    task_events: TaskEvents, args: tuple[Any, ...], refusal: str
) -> None:
    with pytest.raises(TaskArgumentsError, match=refusal):
        add_and_record.enqueue(*args)
    assert task_events.of(RUNNER, "published") == []


def test_a_priority_or_a_run_after_beyond_the_countdown_limit_is_refused(task_events: TaskEvents) -> None:
    with pytest.raises(InvalidTaskError, match="priority"):
        add_and_record.using(priority=10)
    late = add_and_record.using(run_after=timezone.now() + timedelta(seconds=settings.TASK_MAX_COUNTDOWN + 60))
    with pytest.raises(CountdownTooLongError, match="TASK_MAX_COUNTDOWN"):
        late.enqueue("too-late", 1, 2)
    assert task_events.of(RUNNER, "published") == []


def test_run_after_delays_the_run(celery_workers: dict[str, Any], task_events: TaskEvents) -> None:
    result = add_and_record.using(run_after=timezone.now() + timedelta(seconds=2)).enqueue("deferred", 1, 2)
    sent_at = published(task_events, result.id)[0].at
    wait_until(lambda: cache.get("django-task:deferred"), what="the deferred Django task to run")
    (started,) = task_events.of(RUNNER, "started", task_id=result.id)
    assert started.at - sent_at >= 1.5


def test_a_failing_task_becomes_a_dead_letter_is_counted_and_replays_on_its_queue(
    client: Client, celery_workers: dict[str, Any], task_events: TaskEvents
) -> None:
    result = fail_on_purpose.using(queue_name="cpu").enqueue("dead")
    failed = wait_until(lambda: FailedTask.objects.filter(task_id=result.id).first(), what="the dead letter")
    assert (failed.task_name, failed.queue, failed.exception) == (RUNNER, "cpu", "ValueError")
    assert failed.args == ["tests.taskqueue.django_task_functions.fail_on_purpose", ["dead"], {}]

    def counted() -> dict:
        samples = scrape(client)
        return samples if value(samples, "celery_task_dead_lettered_total", task=RUNNER) == 1 else {}

    samples = wait_until(counted, what="the dead letter to be counted")
    assert value(samples, "celery_task_failed_total", task=RUNNER) == 1
{%- if cookiecutter.result_backend != "none" %}
    outcome = wait_until(lambda: (r := fail_on_purpose.get_result(result.id)).is_finished and r, what="the failure")
    assert outcome.status == TaskResultStatus.FAILED
    assert [error.exception_class_path for error in outcome.errors] == ["builtins.ValueError"]
    assert "broken on purpose: dead" in outcome.errors[0].traceback
{%- endif %}

    replayed_as = dead_letters.replay(failed)
    # Not the default queue its name would route it to: the one the Django task named.
    assert [event.queue for event in published(task_events, replayed_as)] == ["cpu"]
    wait_until(lambda: task_events.of(RUNNER, "failed", task_id=replayed_as), what="the replay to run (and fail)")
{%- if cookiecutter.result_backend != "none" %}


def test_results_are_read_from_the_result_backend() -> None:
    backend = task_backends["default"]
    assert backend.supports_get_result is True
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result("no-such-task")
{%- else %}


def test_with_results_off_reading_one_says_so() -> None:
    backend = task_backends["default"]
    assert backend.supports_get_result is False
    result = add_and_record.enqueue("no-results", 1, 2)
    with pytest.raises(TaskResultsDisabledError, match="Task results are off in this project"):
        result.refresh()
    with pytest.raises(TaskResultsDisabledError, match="result_backend=none"):
        add_and_record.get_result(result.id)
{%- endif %}

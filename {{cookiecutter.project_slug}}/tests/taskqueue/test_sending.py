"""Sending by name refuses what would otherwise be lost, and takes the queue from the routes."""

import pytest

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.taskqueue.sending import (
    TaskSendError,
    UnknownTaskError,
    routed_queue,
    send_task_by_name,
    signature_by_name,
)
from tests.support.waiting import wait_until
from tests.taskqueue.tasks import fetch_delivery


def test_an_unknown_task_name_is_refused_with_the_likely_name():
    with pytest.raises(UnknownTaskError, match=r"No registered task is named 'tests\.record_delivry'") as raised:
        send_task_by_name("tests.record_delivry", args=["marker", {}])
    assert "Did you mean 'tests.record_delivery'?" in str(raised.value)


def test_signatures_by_name_are_checked_too():
    with pytest.raises(UnknownTaskError):
        signature_by_name("tests.record_deliveries")


def test_the_caller_does_not_choose_the_queue():
    with pytest.raises(TaskSendError, match=r"takes no queue: CELERY_TASK_ROUTES gives it \('io'\)"):
        send_task_by_name("tests.fetch_delivery", queue="default", args=["marker"])


@pytest.mark.parametrize(
    ("task_name", "queue"),
    [("tests.record_delivery", "default"), ("tests.fetch_delivery", "io"), ("tests.build_delivery", "cpu")],
)
def test_by_name_a_task_goes_to_the_queue_its_route_gives(task_events, task_name, queue):
    assert routed_queue(task_name) == queue
    send_task_by_name(task_name, args=["by-name"] if queue != "default" else ["by-name", {}])
    assert [event.queue for event in task_events.of(task_name, "published")] == [queue]


@pytest.fixture
def rerouted(settings):
    """CELERY_TASK_ROUTES with tests.fetch_delivery moved to the cpu queue, as a settings change would."""
    routes = {"tests.fetch_delivery": {"queue": "cpu"}, **celery_app.conf.task_routes}
    saved = celery_app.conf.task_routes
    celery_app.conf.task_routes = routes
    celery_app.amqp.flush_routes()
    celery_app.amqp.__dict__.pop("router", None)
    yield
    celery_app.conf.task_routes = saved
    celery_app.amqp.flush_routes()
    celery_app.amqp.__dict__.pop("router", None)


@pytest.mark.usefixtures("rerouted")
def test_a_task_moved_to_another_queue_takes_its_callers_by_name_with_it(task_events):
    send_task_by_name("tests.fetch_delivery", args=["moved"])
    fetch_delivery.delay("moved")
    assert [event.queue for event in task_events.of("tests.fetch_delivery", "published")] == ["cpu", "cpu"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_workers")
def test_a_known_task_is_sent_to_its_queue_and_runs(task_events):
    result = send_task_by_name("taskqueue.purge_failed_tasks", countdown=1)
    started = wait_until(lambda: task_events.of("taskqueue.purge_failed_tasks", "started", task_id=result.id))
    assert started[0].queue == "default"

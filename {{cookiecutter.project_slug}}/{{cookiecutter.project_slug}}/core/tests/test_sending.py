"""Sending by name refuses what would otherwise be lost or run twice (P3, P10)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from {{ cookiecutter.project_slug }}.core.sending import (
    CountdownTooLongError,
    UnknownTaskError,
    WrongQueueError,
    send_task_by_name,
    signature_by_name,
)
from {{ cookiecutter.project_slug }}.testing.waiting import wait_until


def test_an_unknown_task_name_is_refused_with_the_likely_name():
    with pytest.raises(UnknownTaskError, match=r"No registered task is named 'accounts\.send_welcome_mail'") as raised:
        send_task_by_name("accounts.send_welcome_mail", queue="default", args=[1])
    assert "Did you mean 'accounts.send_welcome_email'?" in str(raised.value)


def test_signatures_by_name_are_checked_too():
    with pytest.raises(UnknownTaskError):
        signature_by_name("reports.fetch_pages")


def test_a_queue_that_contradicts_the_routes_is_refused():
    with pytest.raises(WrongQueueError, match=r"'reports\.fetch_page' is routed to the 'io' queue"):
        send_task_by_name("reports.fetch_page", queue="default", args=["2024-05-01", 1])


def test_a_countdown_longer_than_the_maximum_is_refused(settings):
    with pytest.raises(CountdownTooLongError, match="longer than TASK_MAX_COUNTDOWN"):
        send_task_by_name("core.purge_failed_tasks", queue="default", countdown=settings.TASK_MAX_COUNTDOWN + 1)


def test_an_eta_further_than_the_maximum_is_refused(settings):
    eta = timezone.now() + timedelta(seconds=settings.TASK_MAX_COUNTDOWN + 60)
    with pytest.raises(CountdownTooLongError):
        send_task_by_name("core.purge_failed_tasks", queue="default", eta=eta)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_a_known_task_is_sent_to_its_queue_and_runs(task_events):
    result = send_task_by_name("core.purge_failed_tasks", queue="default", countdown=1)
    started = wait_until(lambda: task_events.of("core.purge_failed_tasks", "started", task_id=result.id))
    assert started[0].queue == "default"

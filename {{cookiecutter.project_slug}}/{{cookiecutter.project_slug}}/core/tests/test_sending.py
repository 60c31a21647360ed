"""Sending by name refuses what would otherwise be lost or run twice (P3, P10)."""

import pytest

from {{ cookiecutter.project_slug }}.core.sending import (
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


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_a_known_task_is_sent_to_its_queue_and_runs(task_events):
    result = send_task_by_name("core.purge_failed_tasks", queue="default", countdown=1)
    started = wait_until(lambda: task_events.of("core.purge_failed_tasks", "started", task_id=result.id))
    assert started[0].queue == "default"

"""Server errors email the admins through a worker: a slow SMTP server does not slow the failing request (P32)."""

import time

import pytest
from django.core import mail
from django.test import Client

from {{ cookiecutter.project_slug }}.core.tasks import send_admin_email

pytestmark = pytest.mark.django_db(transaction=True)

SMTP_DELAY = 3


@pytest.mark.urls("{{ cookiecutter.project_slug }}.core.tests.failing_urls")
@pytest.mark.usefixtures("celery_worker")
def test_a_server_error_answers_at_once_and_the_worker_emails_the_admins(settings, task_events):
    settings.EMAIL_BACKEND = "{{ cookiecutter.project_slug }}.testing.mail.SlowLocmemEmailBackend"
    settings.TEST_EMAIL_DELAY = SMTP_DELAY
    started = time.monotonic()
    response = Client(raise_request_exception=False).get("/fail/")
    elapsed = time.monotonic() - started
    assert response.status_code == 500
    # Django's own AdminEmailHandler would have waited for the slow SMTP server here.
    assert elapsed < SMTP_DELAY / 2

    task_events.wait_for("core.send_admin_email", "succeeded", timeout=SMTP_DELAY + 30)
    (email,) = [message for message in mail.outbox if message.subject.startswith(settings.EMAIL_SUBJECT_PREFIX)]
    assert email.to == [address for _, address in settings.ADMINS]
    assert "Internal Server Error: /fail/" in email.subject
    assert "RuntimeError at /fail/\nthe view failed on purpose" in email.body


@pytest.mark.usefixtures("celery_worker")
def test_the_error_email_is_retried_when_the_mail_server_is_down_for_a_moment(settings, task_events):
    settings.EMAIL_BACKEND = "{{ cookiecutter.project_slug }}.testing.mail.FailingLocmemEmailBackend"
    settings.TEST_EMAIL_FAILURES = 1
    send_admin_email.delay("Internal Server Error: /fail/", "the view failed on purpose")
    task_events.wait_for("core.send_admin_email", "succeeded")
    assert len(task_events.wait_for("core.send_admin_email", "retried")) == 1
    (email,) = mail.outbox
    assert email.subject == f"{settings.EMAIL_SUBJECT_PREFIX}Internal Server Error: /fail/"


@pytest.mark.urls("{{ cookiecutter.project_slug }}.core.tests.failing_urls")
def test_the_error_email_goes_through_the_broker_not_smtp(task_events):
    Client(raise_request_exception=False).get("/fail/")
    (published,) = task_events.of("core.send_admin_email", "published")
    assert published.queue == "default"

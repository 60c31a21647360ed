"""Server errors email the admins through a worker: a slow SMTP server does not slow the failing request."""

import time

import pytest
from django.core import mail
from django.test import Client

from {{ cookiecutter.project_slug }}.error_emails.tasks import send_to_admins

pytestmark = pytest.mark.django_db(transaction=True)

SMTP_DELAY = 3


@pytest.mark.urls("tests.error_emails.failing_urls")
@pytest.mark.usefixtures("celery_worker")
def test_a_server_error_answers_at_once_and_the_worker_emails_the_admins(settings, task_events):
    settings.EMAIL_BACKEND = "tests.support.mail.SlowLocmemEmailBackend"
    settings.TEST_EMAIL_DELAY = SMTP_DELAY
    started = time.monotonic()
    response = Client(raise_request_exception=False).get("/fail/")
    elapsed = time.monotonic() - started
    assert response.status_code == 500
    # Django's own AdminEmailHandler would have waited for the slow SMTP server here.
    assert elapsed < SMTP_DELAY / 2

    task_events.wait_for("error_emails.send_to_admins", "succeeded", timeout=SMTP_DELAY + 30)
    (email,) = [message for message in mail.outbox if message.subject.startswith(settings.EMAIL_SUBJECT_PREFIX)]
    assert email.to == [address for _, address in settings.ADMINS]
    assert "Internal Server Error: /fail/" in email.subject
    assert "RuntimeError at /fail/\nthe view failed on purpose" in email.body


@pytest.mark.usefixtures("celery_worker")
def test_the_error_email_is_retried_when_the_mail_server_is_down_for_a_moment(settings, task_events):
    settings.EMAIL_BACKEND = "tests.support.mail.FailingLocmemEmailBackend"
    settings.TEST_EMAIL_FAILURES = 1
    send_to_admins.delay("Internal Server Error: /fail/", "the view failed on purpose")
    task_events.wait_for("error_emails.send_to_admins", "succeeded")
    assert len(task_events.wait_for("error_emails.send_to_admins", "retried")) == 1
    (email,) = mail.outbox
    assert email.subject == f"{settings.EMAIL_SUBJECT_PREFIX}Internal Server Error: /fail/"


@pytest.mark.urls("tests.error_emails.failing_urls")
def test_the_error_email_goes_through_the_broker_not_smtp(task_events):
    Client(raise_request_exception=False).get("/fail/")
    (published,) = task_events.of("error_emails.send_to_admins", "published")
    assert published.queue == "io"  # sending email waits on the network: its verb routes it there

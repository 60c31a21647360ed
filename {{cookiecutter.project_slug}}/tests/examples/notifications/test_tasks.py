"""Notification tasks through the broker and a real worker."""

import logging
import time
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from {{ cookiecutter.project_slug }}.examples.notifications import services
from {{ cookiecutter.project_slug }}.examples.notifications.tasks import send_welcome_email
from {{ cookiecutter.project_slug }}.taskqueue.models import FailedTask
from {{ cookiecutter.project_slug }}.taskqueue.sending import routed_queue
{%- if cookiecutter.broker == "rabbitmq" %}
from tests.support.dead_letter_queue import dead_letters
{%- endif %}
from tests.support.mail import SlowLocmemEmailBackend
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_workers")]

SLOW_EMAIL = "tests.support.mail.SlowLocmemEmailBackend"
FAILING_EMAIL = "tests.support.mail.FailingLocmemEmailBackend"
SIGNALS = "{{ cookiecutter.project_slug }}.taskqueue.signals"
User = get_user_model()


def sent_to(address: str) -> list:
    return [message for message in mail.outbox if message.to == [address]]


@pytest.fixture
def user():
    return User.objects.create_user("ada", email="ada@example.com")


def test_sign_up_enqueues_the_welcome_email_only_after_commit(task_events):
    with transaction.atomic():
        user = services.sign_up(username="grace", email="grace@example.com", password=uuid.uuid4().hex)
        # Not yet: a worker would look for a user that is not committed.
        assert task_events.of("notifications.send_welcome_email", "published") == []
    (published,) = task_events.of("notifications.send_welcome_email", "published")
    assert published.args == (user.pk,)  # the ID, not the object
    assert published.queue == "io"  # its verb, send_, routes it there
    task_events.wait_for("notifications.send_welcome_email", "succeeded")
    assert len(sent_to("grace@example.com")) == 1


def test_the_same_message_delivered_twice_sends_one_email(user, task_events):
    for _ in range(2):
        send_welcome_email.apply_async([user.pk], task_id=f"welcome-{user.pk}")
    task_events.wait_for("notifications.send_welcome_email", "succeeded", count=2)
    assert len(sent_to(user.email)) == 1


def test_a_mail_server_that_is_down_for_a_moment_is_retried_and_the_email_sent_once(user, task_events, settings):
    settings.EMAIL_BACKEND, settings.TEST_EMAIL_FAILURES = FAILING_EMAIL, 1
    send_welcome_email.delay(user.pk)
    task_events.wait_for("notifications.send_welcome_email", "succeeded")
    (retry,) = task_events.wait_for("notifications.send_welcome_email", "retried")
    assert "the test mail server is down" in str(retry.detail.exc)
    # The failed attempt recorded nothing, so the retry sent the email; nothing sent it twice.
    assert len(sent_to(user.email)) == 1


def test_two_concurrent_runs_send_one_email(user, task_events, settings):
    # Each send takes a second, so the two runs overlap: the one that finds the other's claim is retried, and
    # then finds the email sent.
    settings.EMAIL_BACKEND, settings.TEST_EMAIL_DELAY = SLOW_EMAIL, 1
    send_welcome_email.delay(user.pk)
    send_welcome_email.delay(user.pk)
    finished = task_events.wait_for("notifications.send_welcome_email", "succeeded", count=2)
    first_two = task_events.of("notifications.send_welcome_email", "started")[:2]
    assert max(event.at for event in first_two) < min(event.at for event in finished), "the runs did not overlap"
    assert len(sent_to(user.email)) == 1
    for retry in task_events.of("notifications.send_welcome_email", "retried"):
        assert isinstance(retry.detail.exc, services.WelcomeEmailInProgress), retry.detail


def test_a_run_waiting_on_a_long_send_backs_off_within_task_max_countdown(user, task_events, settings):
    # The other run's send takes 4 s: backing off 1, 2, 4 s would pass a 1 s TASK_MAX_COUNTDOWN, which the sender
    # refuses (the retry would be a dead letter); capped, the waiting run retries every second until it is sent.
    settings.EMAIL_BACKEND, settings.TEST_EMAIL_DELAY, settings.TASK_MAX_COUNTDOWN = SLOW_EMAIL, 4, 1
    send_welcome_email.delay(user.pk)
    send_welcome_email.delay(user.pk)
    finished = task_events.wait_for("notifications.send_welcome_email", "succeeded", count=2, timeout=60)
    first_two = task_events.of("notifications.send_welcome_email", "started")[:2]
    assert max(event.at for event in first_two) < min(event.at for event in finished), "the runs did not overlap"
    assert len(task_events.of("notifications.send_welcome_email", "retried")) >= 2
    assert not FailedTask.objects.filter(task_name="notifications.send_welcome_email").exists()
    assert len(sent_to(user.email)) == 1


def test_a_slow_mail_server_does_not_block_writes_to_the_user(user, task_events, settings):
    # No lock is held while the mail server answers: the user can log in (a write to its row) meanwhile.
    settings.EMAIL_BACKEND, settings.TEST_EMAIL_DELAY = SLOW_EMAIL, 3
    send_welcome_email.delay(user.pk)
    wait_until(lambda: cache.get(SlowLocmemEmailBackend.SENDING), what="the run to start sending")
    started = time.monotonic()
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(last_login=timezone.now())
    took = time.monotonic() - started
    assert took < 1.5, f"the write to the user waited {took:.1f} s for the send"
    assert sent_to(user.email) == [], "the send ended before the write: nothing was proven"
    task_events.wait_for("notifications.send_welcome_email", "succeeded")
    assert len(sent_to(user.email)) == 1


def test_a_missing_user_fails_once_with_a_clear_log_line(task_events, caplog):
    result = send_welcome_email.delay(999_999)
    task_events.wait_for("notifications.send_welcome_email", "failed")
    assert len(task_events.of("notifications.send_welcome_email", "started")) == 1
    assert task_events.of("notifications.send_welcome_email", "retried") == []
    (line,) = [record for record in caplog.records if record.name == SIGNALS and result.id in record.getMessage()]
    assert line.levelno == logging.ERROR
    assert line.getMessage().startswith(
        f"Task notifications.send_welcome_email[{result.id}] failed, not retried: a permanent error: DoesNotExist"
    )
    assert "args=[999999]" in line.getMessage()
    assert wait_until(lambda: FailedTask.objects.filter(task_id=result.id).exists())


@pytest.mark.parametrize("wrong", ["42", 4.2, True, None, [42]])
def test_a_wrongly_typed_user_id_fails_once_before_the_task_runs(wrong, task_events, caplog):
    # By name, as code that cannot import tasks.py would send it: .delay() cannot check types either.
    result = send_welcome_email.app.send_task("notifications.send_welcome_email", args=[wrong])
    (failure,) = task_events.wait_for("notifications.send_welcome_email", "failed")
    assert task_events.of("notifications.send_welcome_email", "retried") == []
    assert isinstance(failure.detail, TypeError)
    assert f"argument 'user_id' must be int, got {type(wrong).__name__}" in str(failure.detail)
    assert any(result.id in record.getMessage() and "TypeError" in record.getMessage() for record in caplog.records)


def test_a_login_code_email_that_waited_past_its_expiry_is_never_run(task_events, settings, celery_workers):
    # Keep every thread of the worker that sends login codes busy for 2 s with valid codes (prefetch 1).
    settings.EMAIL_BACKEND, settings.TEST_EMAIL_DELAY = SLOW_EMAIL, 2
    threads = celery_workers[routed_queue("notifications.send_login_code")].concurrency
    busy = [User.objects.create_user(f"busy{n}", email=f"busy{n}@example.com") for n in range(threads)]
    for other in busy:
        services.request_login_code(user_id=other.pk)
    late = User.objects.create_user("late", email="late@example.com")
    settings.LOGIN_CODE_TTL = 1
    services.request_login_code(user_id=late.pk)
    sends = task_events.of("notifications.send_login_code", "published")
    (published,) = [sent for sent in sends if sent.args[0] == late.pk]

    task_events.wait_for("notifications.send_login_code", "succeeded", count=len(busy))
{%- if cookiecutter.broker == "rabbitmq" %}
    # Celery sends `expires` as the message's AMQP expiration: RabbitMQ dead-letters it unrun, no worker sees it.
    (expired,) = wait_until(dead_letters, timeout=30, what="the expired message in the dead-letter queue")
    assert expired == {"id": published.task_id, "reason": "expired", "queue": "io"}
{%- else %}
    (revoked,) = task_events.wait_for("notifications.send_login_code", "revoked")
    assert (revoked.task_id, revoked.detail) == (published.task_id, True)  # True: because it expired
{%- endif %}
    assert task_events.of("notifications.send_login_code", "started", task_id=published.task_id) == []
    assert sent_to("late@example.com") == []
    assert all(len(sent_to(other.email)) == 1 for other in busy)

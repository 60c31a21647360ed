"""Notification logic without Celery."""

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.utils import timezone

from {{ cookiecutter.project_slug }}.examples.notifications import services
from {{ cookiecutter.project_slug }}.examples.notifications.models import WelcomeEmail

pytestmark = pytest.mark.django_db


@pytest.fixture
def user():
    return get_user_model().objects.create_user("ada", email="ada@example.com")


def test_welcome_email_is_sent_once_however_often_the_service_runs(user):
    assert services.send_welcome_email(user_id=user.pk) is True
    assert services.send_welcome_email(user_id=user.pk) is False
    assert [message.to for message in mail.outbox] == [["ada@example.com"]]
    assert WelcomeEmail.objects.filter(user=user).count() == 1


def test_a_failed_send_records_nothing_so_a_retry_sends_again(user, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 1  # nothing listens: refused at once
    with pytest.raises(ConnectionRefusedError):
        services.send_welcome_email(user_id=user.pk)
    # The claim is given back: a retry need not wait for it to expire.
    assert WelcomeEmail.objects.filter(user=user).values_list("claimed_at", "sent_at").get() == (None, None)

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert services.send_welcome_email(user_id=user.pk) is True


def test_login_code_is_emailed_and_accepted_once(user):
    services.request_login_code(user_id=user.pk)  # the message goes to Redis; no worker needed here
    assert services.send_login_code(user_id=user.pk) is True
    (message,) = mail.outbox
    code = message.body.split("Your code is ")[1][:6]
    assert services.check_login_code(user_id=user.pk, code="not-it") is False
    assert services.check_login_code(user_id=user.pk, code=code) is True
    assert services.check_login_code(user_id=user.pk, code=code) is False


def test_an_expired_login_code_is_not_emailed(user):
    assert services.send_login_code(user_id=user.pk) is False
    assert mail.outbox == []


def test_a_live_claim_of_another_run_is_retried_and_an_expired_one_taken_over(user):
    claimed = timezone.now()
    WelcomeEmail.objects.create(user=user, claimed_at=claimed)
    with pytest.raises(services.WelcomeEmailInProgress) as in_progress:
        services.send_welcome_email(user_id=user.pk)
    assert 0 < in_progress.value.expires_in <= services.welcome_email_claim().total_seconds()
    assert mail.outbox == []
    # The run that claimed it died mid-send: once its claim is older than any send can take, the email is sent.
    WelcomeEmail.objects.filter(user=user).update(claimed_at=claimed - services.welcome_email_claim())
    assert services.send_welcome_email(user_id=user.pk) is True
    assert [message.to for message in mail.outbox] == [["ada@example.com"]]

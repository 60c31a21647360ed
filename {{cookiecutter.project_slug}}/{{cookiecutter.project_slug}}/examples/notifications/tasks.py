"""Thin wrappers around notifications.services: names, retries."""

import smtplib

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from {{ cookiecutter.project_slug }}.examples.notifications import services

# Worth retrying: the mail server is down or slow, or the database dropped the connection (a restart, a failover).
# Anything else (a missing user, a wrongly typed ID) fails at once and is recorded, because a retry would fail the
# same way.
TRANSIENT_ERRORS = (smtplib.SMTPException, OSError, OperationalError)
# Backoff with jitter, so a recovering mail server is not hit by every worker at once.
SMTP_RETRIES = {
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": True,
    "retry_jitter": True,
    # What bounds a send on the io queue, whose threads no time limit stops (check celery.E011).
    "io_timeout": settings.EMAIL_SEND_TIMEOUT,
}


@shared_task(name="notifications.send_welcome_email", bind=True, retry_backoff_max=600, max_retries=8, **SMTP_RETRIES)
def send_welcome_email(self, user_id: int) -> None:
    try:
        services.send_welcome_email(user_id=user_id)
    except services.WelcomeEmailInProgress as exc:
        # Another run is sending it. Back off as the SMTP retries do, but never past the moment its claim
        # expires: by then it has sent the email (the retry does nothing) or it died (the retry sends). Nor past
        # TASK_MAX_COUNTDOWN, which the sender refuses (the retry would become a dead letter).
        countdown = min(2**self.request.retries, exc.expires_in, settings.TASK_MAX_COUNTDOWN)
        raise self.retry(exc=exc, countdown=countdown) from exc


# The code expires within minutes: retry briefly, then give up.
@shared_task(name="notifications.send_login_code", retry_backoff_max=60, max_retries=3, **SMTP_RETRIES)
def send_login_code(user_id: int) -> None:
    services.send_login_code(user_id=user_id)

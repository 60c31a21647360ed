"""Notification logic as plain functions: tested without Celery; tasks.py wraps them."""

import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from {{ cookiecutter.project_slug }}.examples.notifications.models import WelcomeEmail
from {{ cookiecutter.project_slug }}.taskqueue.sending import send_task_by_name

logger = logging.getLogger(__name__)


def sign_up(*, username: str, email: str, password: str):
    """Create the user; the welcome email is enqueued only once the row is committed."""
    with transaction.atomic():
        user = get_user_model().objects.create_user(username=username, email=email, password=password)
        # After commit, or the worker may look for a user that does not exist yet. The ID, not the
        # object, goes in the message. By name: tasks.py imports this module.
        transaction.on_commit(lambda: send_task_by_name("notifications.send_welcome_email", args=[user.pk]))
    return user


class WelcomeEmailInProgress(Exception):
    """Another run is sending this user's welcome email: retry once it has been sent or its claim expired."""

    def __init__(self, user_id: int, expires_in: float):
        super().__init__(user_id, expires_in)  # its args rebuild it: pickled into the retry and the result
        self.user_id, self.expires_in = user_id, expires_in

    def __str__(self) -> str:
        return f"user {self.user_id}: another run is sending it; its claim expires in {self.expires_in:.0f} s"


# How long a claim holds: past the bound on one send (EMAIL_SEND_TIMEOUT, the task's io_timeout too), so only a run
# that died mid-send loses its claim to another.
def welcome_email_claim() -> timedelta:
    return timedelta(seconds=settings.EMAIL_SEND_TIMEOUT + 30)


def send_welcome_email(*, user_id: int) -> bool:
    """Send the welcome email unless it was sent already; return whether this call sent it.

    Safe to run twice, and twice at once, without holding a lock while the mail server answers: a short
    transaction claims the email (the WelcomeEmail row, locked for that moment only), the email is sent outside
    any transaction, and a second short one records it as sent. A run that finds a live claim raises
    WelcomeEmailInProgress (tasks.py retries it: by then it was sent, or its run died and the claim expired).
    A send that raises gives its claim back, so the retry sends again. (SQLite has no row locks; there
    `transaction_mode = IMMEDIATE`, set in settings, makes each short transaction wait for the other.)
    """
    user = get_user_model().objects.get(pk=user_id)
    with transaction.atomic():
        record, _ = WelcomeEmail.objects.select_for_update().get_or_create(user=user)
        if record.sent_at is not None:
            logger.info("Welcome email for user %s already sent at %s", user_id, record.sent_at)
            return False
        now = timezone.now()
        if record.claimed_at is not None and now - record.claimed_at < welcome_email_claim():
            expires_in = (record.claimed_at + welcome_email_claim() - now).total_seconds()
            raise WelcomeEmailInProgress(user_id, expires_in)
        record.claimed_at = now
        record.save(update_fields=["claimed_at"])
    try:
        send_mail(
            subject="Welcome!",
            message=f"Hello {user.get_username()}, your account is ready.",
            from_email=None,
            recipient_list=[user.email],
        )
    except BaseException:
        WelcomeEmail.objects.filter(user=user, claimed_at=now).update(claimed_at=None)
        raise
    # A run that dies here, after the send, leaves a claim that expires: its retry sends the email a second time.
    # Email is at-least-once; this narrows the window to the one write below.
    WelcomeEmail.objects.filter(user=user).update(sent_at=timezone.now())
    return True


def _login_code_key(user_id: int) -> str:
    return f"notifications:login-code:{user_id}"


def request_login_code(*, user_id: int) -> None:
    """Issue a one-time sign-in code and enqueue its email, which is useless once the code expired."""
    ttl = settings.LOGIN_CODE_TTL
    cache.set(_login_code_key(user_id), f"{secrets.randbelow(10**6):06d}", timeout=ttl)
    # The code itself stays out of the message: Redis, Flower and logs would all show it.
    send_task_by_name("notifications.send_login_code", args=[user_id], expires=ttl)


def send_login_code(*, user_id: int) -> bool:
    """Email the user's current code; return False when it already expired."""
    code = cache.get(_login_code_key(user_id))
    if code is None:
        logger.info("Login code for user %s expired before its email was sent; not sent", user_id)
        return False
    user = get_user_model().objects.get(pk=user_id)
    send_mail(
        subject="Your sign-in code",
        message=f"Your code is {code}. It expires in {settings.LOGIN_CODE_TTL // 60} minutes.",
        from_email=None,
        recipient_list=[user.email],
    )
    return True


def check_login_code(*, user_id: int, code: str) -> bool:
    """True once for the right code: a used code is deleted."""
    key = _login_code_key(user_id)
    expected = cache.get(key)
    if expected is None or not secrets.compare_digest(expected, code):
        return False
    return bool(cache.delete(key))

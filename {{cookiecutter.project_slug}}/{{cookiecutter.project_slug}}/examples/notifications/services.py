"""Notification logic as plain functions: tested without Celery; tasks.py wraps them."""

import logging
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import transaction

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


def send_welcome_email(*, user_id: int) -> bool:
    """Send the welcome email unless it was sent already; return whether this call sent it.

    Safe to run twice, and twice at once: the record of the email is read and written under
    the user's row lock, so a second run waits for the first and then sees the record. (SQLite
    has no row locks; there `transaction_mode = IMMEDIATE`, set in settings, makes the
    transaction itself wait.)
    """
    with transaction.atomic():
        user = get_user_model().objects.select_for_update().get(pk=user_id)
        sent = WelcomeEmail.objects.filter(user=user).first()
        if sent is not None:
            logger.info("Welcome email for user %s already sent at %s", user_id, sent.sent_at)
            return False
        # If sending raises, the transaction rolls back, nothing is recorded and a retry sends again.
        send_mail(
            subject="Welcome!",
            message=f"Hello {user.get_username()}, your account is ready.",
            from_email=None,
            recipient_list=[user.email],
        )
        WelcomeEmail.objects.create(user=user)
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

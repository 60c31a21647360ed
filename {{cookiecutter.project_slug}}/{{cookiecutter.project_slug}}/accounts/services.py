"""Account logic as plain functions (P6): tested without Celery; tasks.py wraps them."""

import logging
import secrets

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from {{ cookiecutter.project_slug }}.accounts.models import User
from {{ cookiecutter.project_slug }}.core.sending import send_task_by_name

logger = logging.getLogger(__name__)


def sign_up(*, username: str, email: str, password: str) -> User:
    """Create the user; the welcome email is enqueued only once the row is committed (P5)."""
    with transaction.atomic():
        user = User.objects.create_user(username=username, email=email, password=password)
        # After commit, or the worker may look for a user that does not exist yet. The ID, not the
        # object, goes in the message (P4). By name: tasks.py imports this module.
        transaction.on_commit(
            lambda: send_task_by_name("accounts.send_welcome_email", queue="default", args=[user.pk])
        )
    return user


def send_welcome_email(*, user_id: int) -> bool:
    """Send the welcome email unless it was sent already; return whether this call sent it.

    Safe to run twice, and twice at once (P8): the flag is read and set under a row lock,
    so a second run waits for the first and then sees the flag. (SQLite has no row locks;
    there `transaction_mode = IMMEDIATE`, set in settings, makes the transaction itself wait.)
    """
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user_id)
        if user.welcome_email_sent_at is not None:
            logger.info("Welcome email for user %s already sent at %s", user_id, user.welcome_email_sent_at)
            return False
        # If sending raises, the transaction rolls back, the flag stays unset and a retry sends again.
        send_mail(
            subject="Welcome!",
            message=f"Hello {user.get_username()}, your account is ready.",
            from_email=None,
            recipient_list=[user.email],
        )
        user.welcome_email_sent_at = timezone.now()
        user.save(update_fields=["welcome_email_sent_at"])
    return True


def _login_code_key(user_id: int) -> str:
    return f"accounts:login-code:{user_id}"


def request_login_code(*, user_id: int) -> None:
    """Issue a one-time sign-in code and enqueue its email, which is useless once the code expired (P15)."""
    ttl = settings.LOGIN_CODE_TTL
    cache.set(_login_code_key(user_id), f"{secrets.randbelow(10**6):06d}", timeout=ttl)
    # The code itself stays out of the message: Redis, Flower and logs would all show it.
    send_task_by_name("accounts.send_login_code", queue="default", args=[user_id], expires=ttl)


def send_login_code(*, user_id: int) -> bool:
    """Email the user's current code; return False when it already expired."""
    code = cache.get(_login_code_key(user_id))
    if code is None:
        logger.info("Login code for user %s expired before its email was sent; not sent", user_id)
        return False
    user = User.objects.get(pk=user_id)
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

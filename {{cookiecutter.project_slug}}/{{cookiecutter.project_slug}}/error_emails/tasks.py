import smtplib

from celery import shared_task
from django.conf import settings
from django.core.mail import mail_admins


@shared_task(
    name="error_emails.send_to_admins",
    # The mail server is down or slow: retry with backoff and jitter, a bounded number of times.
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
    # On the io queue, whose threads no time limit stops (check celery.E011): what bounds one send.
    io_timeout=settings.EMAIL_SEND_TIMEOUT,
)
def send_to_admins(subject: str, message: str, html_message: str | None = None) -> None:
    """Send an error report enqueued by EnqueuingAdminEmailHandler, off the request that failed."""
    mail_admins(subject, message, html_message=html_message)

import logging
import smtplib
from datetime import timedelta

from celery import shared_task
from django.core.mail import mail_admins

from {{ cookiecutter.project_slug }}.core import dead_letters

logger = logging.getLogger(__name__)

# Dead letters older than this are deleted by the daily purge (schedules.py).
FAILED_TASK_RETENTION = timedelta(days=30)


@shared_task(
    name="core.send_admin_email",
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
)
def send_admin_email(subject: str, message: str, html_message: str | None = None) -> None:
    """Send an error report enqueued by EnqueuingAdminEmailHandler; SMTP trouble is retried here, off the request."""
    mail_admins(subject, message, html_message=html_message)


@shared_task(name="core.purge_failed_tasks")
def purge_failed_tasks() -> None:
    deleted = dead_letters.purge(older_than=FAILED_TASK_RETENTION)
    logger.info("Purged %d failed tasks older than %s", deleted, FAILED_TASK_RETENTION)

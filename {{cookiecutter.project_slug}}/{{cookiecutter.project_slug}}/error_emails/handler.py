"""The logging handler behind LOGGING's "mail_admins": Django's AdminEmailHandler, enqueuing instead of sending.

Django's AdminEmailHandler talks to the SMTP server inside the request that failed: a slow or
unreachable mail server then turns every error into a slow error, exactly when the site is
already in trouble. This handler formats the same email and enqueues it; the worker sends it
(tasks.py) and retries when the mail server is down for a moment.
"""

from django.conf import settings
from django.utils.log import AdminEmailHandler

from {{ cookiecutter.project_slug }}.taskqueue.sending import send_task_by_name


class EnqueuingAdminEmailHandler(AdminEmailHandler):
    def send_mail(self, subject, message, *args, html_message=None, **kwargs):
        if not settings.ADMINS:
            return
        # By name: this module is loaded with LOGGING, before any tasks.py can be imported.
        # retry=False: with Redis down, lose this email rather than hold the request while retrying.
        send_task_by_name(
            "error_emails.send_to_admins",
            kwargs={"subject": subject, "message": message, "html_message": html_message},
            retry=False,
        )

    def emit(self, record):
        if getattr(getattr(record, "request", None), "broker_unavailable", False):
            return  # the broker is down (taskqueue/middleware.py): enqueueing would wait on it too
        try:
            super().emit(record)
        except Exception:  # a logging handler must never break the code that logs
            self.handleError(record)

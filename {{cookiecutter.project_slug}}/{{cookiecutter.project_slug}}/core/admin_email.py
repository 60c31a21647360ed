"""Server-error emails to the admins, sent by a worker instead of the failing request (P32).

Django's AdminEmailHandler talks to the SMTP server inside the request that failed: a slow
or unreachable mail server then turns every error into a slow error, exactly when the site
is already in trouble. This handler formats the same email and enqueues it instead.
"""

from django.conf import settings
from django.utils.log import AdminEmailHandler

from {{ cookiecutter.project_slug }}.core.sending import send_task_by_name


class EnqueuingAdminEmailHandler(AdminEmailHandler):
    def send_mail(self, subject, message, *args, html_message=None, **kwargs):
        if not settings.ADMINS:
            return
        # By name: this module is loaded with LOGGING, before any tasks.py can be imported.
        # retry=False: with Redis down, lose this email rather than hold the request while retrying.
        send_task_by_name(
            "core.send_admin_email",
            queue="default",
            kwargs={"subject": subject, "message": message, "html_message": html_message},
            retry=False,
        )

    def emit(self, record):
        try:
            super().emit(record)
        except Exception:  # a logging handler must never break the code that logs
            self.handleError(record)

from django.apps import AppConfig


class ErrorEmailsConfig(AppConfig):
    """Server-error emails to the ADMINS, sent by a worker instead of the request that failed."""

    name = "{{ cookiecutter.project_slug }}.error_emails"
    label = "error_emails"
    verbose_name = "Error emails"

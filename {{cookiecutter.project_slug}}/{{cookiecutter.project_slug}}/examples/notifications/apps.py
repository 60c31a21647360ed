from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """Example: emails to users, sent by workers (welcome email, sign-in codes)."""

    name = "{{ cookiecutter.project_slug }}.examples.notifications"
    label = "notifications"
    verbose_name = "Notifications (example)"

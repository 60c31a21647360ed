from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "{{ cookiecutter.project_slug }}.core"
    verbose_name = "Core"

    def ready(self):
        # Registers the Celery configuration checks with `manage.py check` (P30),
        # and connects the handlers that log task failures, retries and expiries (P18).
        from {{ cookiecutter.project_slug }}.core import checks, signals  # noqa: F401

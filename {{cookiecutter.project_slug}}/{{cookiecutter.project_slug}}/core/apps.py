from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "{{ cookiecutter.project_slug }}.core"
    verbose_name = "Core"

    def ready(self):
        # Registers the Celery configuration checks with `manage.py check` (P30).
        from {{ cookiecutter.project_slug }}.core import checks  # noqa: F401

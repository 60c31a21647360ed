from django.apps import AppConfig


class HealthConfig(AppConfig):
    """/healthz/: whether this web process and the services it cannot work without answer."""

    name = "{{ cookiecutter.project_slug }}.health"
    label = "health"
    verbose_name = "Health"

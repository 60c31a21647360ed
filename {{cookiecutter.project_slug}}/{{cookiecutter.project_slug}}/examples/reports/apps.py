from django.apps import AppConfig


class ReportsConfig(AppConfig):
    """Example: a nightly report fanned out over an external API's pages and fanned in to one CSV."""

    name = "{{ cookiecutter.project_slug }}.examples.reports"
    label = "reports"
    verbose_name = "Reports (example)"

from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "{{ cookiecutter.project_slug }}.reports"
    verbose_name = "Reports"

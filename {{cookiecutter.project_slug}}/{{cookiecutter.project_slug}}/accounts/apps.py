from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "{{ cookiecutter.project_slug }}.accounts"
    verbose_name = "Accounts"

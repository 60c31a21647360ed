"""The project's Celery application.

Workers start it with ``celery -A config.celery_app worker``; Django imports it
from ``config/__init__.py`` so that ``@shared_task`` binds to this app.
"""

import os

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

# Every task checks its arguments and records its final failure for replay (core/base_task.py).
app = Celery("{{ cookiecutter.project_slug }}", task_cls="{{ cookiecutter.project_slug }}.core.base_task:BaseTask")

# Every Celery setting lives in Django settings with the CELERY_ prefix.
app.config_from_object("django.conf:settings", namespace="CELERY")


@setup_logging.connect
def keep_django_logging(**kwargs):
    """Leave logging to Django's LOGGING (applied by django.setup()): Celery must not hijack the root logger."""


# Find tasks.py in every installed app.
app.autodiscover_tasks()

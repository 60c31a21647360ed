"""Django's tasks API, from wherever this Django has it: ``django.tasks`` from Django 6.0, the django-tasks backport
(``django_tasks``) on Django 5.2.

Import Django tasks' names from here (``from {{ cookiecutter.project_slug }}.taskqueue.django_tasks_api import task``) and the
same code runs on both. After the move to Django 6 the project may import from ``django.tasks`` directly, drop the
backport and its ``INSTALLED_APPS`` entry (docs/django-tasks.md).
"""

from typing import TYPE_CHECKING

import django

# Type-checked against the backport (django-stubs for Django 5.2 has no django.tasks); the same names at run time.
if TYPE_CHECKING or django.VERSION < (6, 0):
    from django_tasks import TaskContext, TaskResult, TaskResultStatus, task, task_backends
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import Task, TaskError
    from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist
    from django_tasks.signals import task_enqueued
else:
    from django.tasks import TaskContext, TaskResult, TaskResultStatus, task, task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import Task, TaskError
    from django.tasks.exceptions import InvalidTask as InvalidTaskError
    from django.tasks.exceptions import TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued

__all__ = [
    "BaseTaskBackend",
    "InvalidTaskError",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "task",
    "task_backends",
    "task_enqueued",
]

"""The project's Celery application.

Workers start it with ``celery -A config.celery_app worker``; Django imports it from
``config/__init__.py`` so that ``@shared_task`` binds to this app.
"""

import os

from celery import Celery
from celery.signals import celeryd_init, setup_logging

from {{ cookiecutter.project_slug }}.taskqueue.liveness import LoopHeartbeat
from {{ cookiecutter.project_slug }}.taskqueue.patches import celery_worker as patched_celery_worker
{%- if cookiecutter.broker == "redis" %}
from {{ cookiecutter.project_slug }}.taskqueue.patches import kombu as patched_kombu
{%- endif %}

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

{% if cookiecutter.broker == "redis" -%}
# redis:// and rediss:// broker URLs use the patched Redis transport ({{ cookiecutter.project_slug }}/taskqueue/patches/).
patched_kombu.install()
{%- else -%}
# RabbitMQ's transport is kombu's own: acknowledgements are the broker's, nothing of it is patched.
{%- endif %}
# -P threads (the io worker) uses a pool whose soft shutdown returns a hung task to its queue and exits.
patched_celery_worker.install()

app = Celery(
    "{{ cookiecutter.project_slug }}",
    # Every task checks its arguments, bounds its redeliveries and records its final failure.
    task_cls="{{ cookiecutter.project_slug }}.taskqueue.base_task:BaseTask",
    # Every message over TASK_MAX_MESSAGE_BYTES or TASK_MAX_COUNTDOWN is refused when sent.
    amqp="{{ cookiecutter.project_slug }}.taskqueue.message_limits:LimitedAMQP",
)

# Every Celery setting lives in Django settings with the CELERY_ prefix.
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each worker's event loop touches its heartbeat file (compose/healthcheck-worker) and a stuck one exits.
app.steps["consumer"].add(LoopHeartbeat)


@celeryd_init.connect
def worker_publish_bounds(conf=None, **kwargs):
    """A worker's publishes wait longer for a slow Redis than a web request's (WORKER_PUBLISH_RETRY_POLICY)."""
    from {{ cookiecutter.project_slug }}.taskqueue.retries import use_worker_publish_bounds

    use_worker_publish_bounds(conf)


@setup_logging.connect
def keep_django_logging(**kwargs):
    """Leave logging to Django's LOGGING (applied by django.setup()): Celery must not hijack the root logger."""


# Find tasks.py in every installed app.
app.autodiscover_tasks()

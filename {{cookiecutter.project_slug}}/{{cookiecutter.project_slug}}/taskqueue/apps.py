from django.apps import AppConfig


class TaskQueueConfig(AppConfig):
    """The project's Celery platform: what every task and every worker of the project relies on."""

    name = "{{ cookiecutter.project_slug }}.taskqueue"
    label = "taskqueue"
    verbose_name = "Task queue"

    def ready(self):
        # `manage.py check` runs the Celery configuration checks; task failures, retries and expiries are
        # logged with the task's name and id; a starting worker reports which upstream patches protect it.
        # Task metrics for /metrics (taskqueue/metrics.py): signal receivers, and a consumer step that tells
        # which workers consume which queue.
        from config.celery_app import app
        from {{ cookiecutter.project_slug }}.taskqueue import checks, metrics, signals  # noqa: F401
        from {{ cookiecutter.project_slug }}.taskqueue.patches import report  # noqa: F401

        metrics.connect()
        app.steps["consumer"].add(metrics.WorkerPresence)

"""This app's periodic tasks; `manage.py sync_periodic_tasks` puts them in the database."""

from {{ cookiecutter.project_slug }}.taskqueue.periodic import PeriodicTaskSpec

PERIODIC_TASKS = [
    PeriodicTaskSpec(
        name="taskqueue: purge old failed tasks",
        task="taskqueue.purge_failed_tasks",
        cron="30 4 * * *",
        description="Delete dead letters older than 30 days.",
    ),
]

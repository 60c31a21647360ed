"""This app's periodic tasks; `manage.py sync_periodic_tasks` puts them in the database (P25)."""

from {{ cookiecutter.project_slug }}.core.periodic import PeriodicTaskSpec

PERIODIC_TASKS = [
    PeriodicTaskSpec(
        name="core: purge old failed tasks",
        task="core.purge_failed_tasks",
        cron="30 4 * * *",
        description="Delete dead letters older than 30 days.",
    ),
]

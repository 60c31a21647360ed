"""This app's periodic tasks; `manage.py sync_periodic_tasks` puts them in the database."""

from {{ cookiecutter.project_slug }}.taskqueue.periodic import PeriodicTaskSpec

PERIODIC_TASKS = [
    PeriodicTaskSpec(
        name="reports: nightly sales report",
        task="reports.generate_report",
        cron="0 3 * * *",
        description="Yesterday's sales report (the task defaults to yesterday).",
    ),
]

"""Periodic tasks declared in code, synced into django-celery-beat's tables.

Each app may have a ``schedules.py`` with ``PERIODIC_TASKS = [PeriodicTaskSpec(...), ...]``.
``manage.py sync_periodic_tasks`` (run on every deploy, after ``migrate``) creates the
missing rows, so a fresh database has them, and leaves alone a row someone changed in
the admin: it warns instead, and ``--force`` resets such rows to the code.

Every row the sync creates (or finds under a declared name) is marked as declared in code
(models.DeclaredPeriodicTask). A marked row whose declaration is gone, removed or renamed, is
deleted, so beat stops sending it after the deploy; rows made in the admin carry no mark and are
never touched.

Why not CELERY_BEAT_SCHEDULE: DatabaseScheduler copies it into the database each time
beat starts, silently undoing every edit made in the admin.
"""

import json
from dataclasses import dataclass, field
from importlib import import_module
from importlib.util import find_spec
from typing import Literal

from django.apps import apps
from django.conf import settings
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from {{ cookiecutter.project_slug }}.taskqueue.models import DeclaredPeriodicTask
from {{ cookiecutter.project_slug }}.taskqueue.sending import ensure_registered

CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")

Outcome = Literal["created", "unchanged", "kept", "reset", "removed"]


@dataclass(frozen=True)
class PeriodicTaskSpec:
    name: str  # unique, shown in the admin
    task: str  # a registered task name
    cron: str  # "minute hour day-of-month month day-of-week", in CELERY_TIMEZONE
    kwargs: dict = field(default_factory=dict)
    description: str = ""

    def crontab_fields(self) -> dict[str, str]:
        values = self.cron.split()
        if len(values) != len(CRON_FIELDS):
            raise ValueError(f"{self.name}: cron {self.cron!r} needs 5 fields: minute hour day month weekday")
        return {**dict(zip(CRON_FIELDS, values, strict=True)), "timezone": settings.CELERY_TIMEZONE}


def spec_of(row: PeriodicTask) -> PeriodicTaskSpec:
    """What a row holds, as a declaration would say it (for reporting a row no code declares)."""
    crontab = row.crontab
    cron = " ".join(str(getattr(crontab, key)) for key in CRON_FIELDS) if crontab else "not a crontab"
    return PeriodicTaskSpec(name=row.name, task=row.task, cron=cron, kwargs=json.loads(row.kwargs or "{}"))


def declared_periodic_tasks() -> list[PeriodicTaskSpec]:
    """Every PeriodicTaskSpec in the ``schedules.py`` of an installed app."""
    specs = []
    for config in apps.get_app_configs():
        module_name = f"{config.name}.schedules"
        if find_spec(module_name) is not None:
            specs.extend(import_module(module_name).PERIODIC_TASKS)
    return specs


def _matches(row: PeriodicTask, spec: PeriodicTaskSpec) -> bool:
    crontab = row.crontab
    return (
        row.task == spec.task
        and row.enabled
        and crontab is not None
        and row.interval_id is None
        and all(str(getattr(crontab, key)) == str(value) for key, value in spec.crontab_fields().items())
        and json.loads(row.kwargs or "{}") == spec.kwargs
    )


def _apply(row: PeriodicTask, spec: PeriodicTaskSpec) -> None:
    row.task = spec.task
    fields = spec.crontab_fields()
    row.crontab = CrontabSchedule.objects.filter(**fields).first() or CrontabSchedule.objects.create(**fields)
    row.interval = row.solar = row.clocked = None
    row.kwargs = json.dumps(spec.kwargs)
    row.args = "[]"
    row.enabled = True
    row.description = spec.description
    row.save()


@transaction.atomic
def sync_periodic_tasks(*, force: bool = False) -> list[tuple[PeriodicTaskSpec, Outcome]]:
    """Create missing rows; report rows that differ from the code and only reset them when forced; delete the
    rows made from a declaration that is gone.

    Running it twice changes nothing the second time (no row is saved, so beat does not reload).
    """
    outcomes: list[tuple[PeriodicTaskSpec, Outcome]] = []
    declared = declared_periodic_tasks()
    for spec in declared:
        ensure_registered(spec.task)
        row = PeriodicTask.objects.select_related("crontab").filter(name=spec.name).first()
        if row is None:
            row = PeriodicTask(name=spec.name)
            _apply(row, spec)
            outcomes.append((spec, "created"))
        elif _matches(row, spec):
            outcomes.append((spec, "unchanged"))
        elif force:
            _apply(row, spec)
            outcomes.append((spec, "reset"))
        else:
            outcomes.append((spec, "kept"))
        # Also marks a row of this name made before the mark existed: the code declares it now.
        DeclaredPeriodicTask.objects.get_or_create(periodic_task=row)
    gone = (
        PeriodicTask.objects.select_related("crontab")
        .filter(declaration__isnull=False)
        .exclude(name__in=[spec.name for spec in declared])
        .order_by("name")
    )
    for row in gone:
        outcomes.append((spec_of(row), "removed"))
        row.delete()  # django-celery-beat's delete signal tells beat to reload its schedule
    return outcomes

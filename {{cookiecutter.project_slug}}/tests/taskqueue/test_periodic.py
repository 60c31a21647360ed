"""Periodic tasks declared in code reach the database, leave it when the code drops them, and admin edits and
rows survive deploys."""

import dataclasses
from io import StringIO

import pytest
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

from {{ cookiecutter.project_slug }}.taskqueue import periodic
from {{ cookiecutter.project_slug }}.taskqueue.models import DeclaredPeriodicTask
from {{ cookiecutter.project_slug }}.taskqueue.periodic import declared_periodic_tasks

pytestmark = pytest.mark.django_db


def sync(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("sync_periodic_tasks", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_sync_creates_every_declared_task_with_its_schedule():
    sync()
    declared = declared_periodic_tasks()
    assert "taskqueue.purge_failed_tasks" in {spec.task for spec in declared}
    for spec in declared:
        row = PeriodicTask.objects.get(name=spec.name)
        cron = row.crontab
        assert (row.task, row.enabled) == (spec.task, True)
        assert f"{cron.minute} {cron.hour} {cron.day_of_month} {cron.month_of_year} {cron.day_of_week}" == spec.cron
        assert str(cron.timezone) == "{{ cookiecutter.timezone }}"


def test_a_second_sync_changes_nothing():
    sync()
    rows = list(PeriodicTask.objects.values())
    last_change = PeriodicTasks.last_change()
    out, err = sync()
    assert list(PeriodicTask.objects.values()) == rows
    assert PeriodicTasks.last_change() == last_change  # beat has nothing to reload
    assert CrontabSchedule.objects.count() == len({spec.cron for spec in declared_periodic_tasks()})
    assert all(line.startswith("unchanged") for line in out.splitlines())
    assert err == ""


def test_a_schedule_edited_in_the_admin_is_kept_with_a_warning():
    sync()
    spec = declared_periodic_tasks()[0]
    row = PeriodicTask.objects.get(name=spec.name)
    row.crontab = CrontabSchedule.objects.create(minute="15", hour="1")
    row.save()
    _, err = sync()
    assert PeriodicTask.objects.get(name=spec.name).crontab.hour == "1"
    assert f"kept      {spec.name}" in err
    assert "--force" in err


def test_a_task_disabled_in_the_admin_stays_disabled():
    sync()
    spec = declared_periodic_tasks()[0]
    PeriodicTask.objects.filter(name=spec.name).update(enabled=False)
    sync()
    assert PeriodicTask.objects.get(name=spec.name).enabled is False


def test_force_resets_edited_tasks_to_the_code():
    sync()
    spec = declared_periodic_tasks()[0]
    PeriodicTask.objects.filter(name=spec.name).update(enabled=False, kwargs='{"day": "2000-01-01"}')
    out, _ = sync("--force")
    row = PeriodicTask.objects.get(name=spec.name)
    assert (row.enabled, row.kwargs) == (True, "{}")
    assert f"reset     {spec.name}" in out


def test_a_task_no_longer_declared_is_removed_and_one_made_in_the_admin_is_kept(monkeypatch):
    sync()
    declared = declared_periodic_tasks()
    dropped = declared[0]
    hand_made = PeriodicTask.objects.create(
        name="made in the admin",
        task=dropped.task,
        crontab=CrontabSchedule.objects.create(minute="5", hour="3"),
    )
    hand_made_before = PeriodicTask.objects.filter(pk=hand_made.pk).values().get()
    last_change = PeriodicTasks.last_change()
    # The declaration is deleted from its schedules.py.
    monkeypatch.setattr(periodic, "declared_periodic_tasks", lambda: declared[1:])
    out, err = sync()
    assert not PeriodicTask.objects.filter(name=dropped.name).exists()
    assert f"removed   {dropped.name} ({dropped.task}, {dropped.cron})" in out
    assert PeriodicTasks.last_change() != last_change  # beat reloads its schedule and stops sending it
    assert PeriodicTask.objects.filter(pk=hand_made.pk).values().get() == hand_made_before
    assert err == ""
    out, _ = sync()  # nothing left to remove
    assert "removed" not in out


def test_a_renamed_declaration_replaces_its_old_row(monkeypatch):
    sync()
    declared = declared_periodic_tasks()
    renamed = dataclasses.replace(declared[0], name=f"{declared[0].name} (renamed)")
    monkeypatch.setattr(periodic, "declared_periodic_tasks", lambda: [renamed, *declared[1:]])
    out, _ = sync()
    assert f"created   {renamed.name}" in out
    assert f"removed   {declared[0].name}" in out
    assert set(PeriodicTask.objects.filter(declaration__isnull=False).values_list("name", flat=True)) == {
        spec.name for spec in [renamed, *declared[1:]]
    }


def test_a_row_of_a_declared_name_from_before_the_mark_is_adopted(monkeypatch):
    # Made by an older sync (no DeclaredPeriodicTask row): the name is declared, so the code owns it.
    spec = declared_periodic_tasks()[0]
    sync()
    DeclaredPeriodicTask.objects.all().delete()
    sync()
    assert DeclaredPeriodicTask.objects.filter(periodic_task__name=spec.name).exists()
    monkeypatch.setattr(periodic, "declared_periodic_tasks", lambda: [])
    out, _ = sync()
    assert f"removed   {spec.name}" in out

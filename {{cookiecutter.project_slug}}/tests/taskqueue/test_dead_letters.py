"""Dead letters: recorded failures, their replay and their purge."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from {{ cookiecutter.project_slug }}.taskqueue import dead_letters
from {{ cookiecutter.project_slug }}.taskqueue.models import FailedTask

pytestmark = pytest.mark.django_db


def failed_task(**fields) -> FailedTask:
    defaults = {"task_id": "abc", "task_name": "taskqueue.purge_failed_tasks", "exception": "OSError"}
    return FailedTask.objects.create(**{**defaults, **fields})


def test_replay_command_needs_a_selection():
    with pytest.raises(CommandError, match="Give FailedTask ids or --task"):
        call_command("replay_failed_tasks")


def test_replay_command_refuses_unknown_ids():
    with pytest.raises(CommandError, match="No failed task with id 404"):
        call_command("replay_failed_tasks", "404")


def test_replay_by_task_name_sends_each_failure_once(task_events):
    first, second = failed_task(task_id="one"), failed_task(task_id="two")
    call_command("replay_failed_tasks", "--task", "taskqueue.purge_failed_tasks")
    call_command("replay_failed_tasks", "--task", "taskqueue.purge_failed_tasks")  # nothing left to replay
    published = task_events.of("taskqueue.purge_failed_tasks", "published")
    first.refresh_from_db()
    second.refresh_from_db()
    assert {event.task_id for event in published} == {first.replayed_as, second.replayed_as}


def test_purge_deletes_only_old_failures():
    old, recent = failed_task(task_id="old"), failed_task(task_id="recent")
    FailedTask.objects.filter(pk=old.pk).update(failed_at=timezone.now() - timedelta(days=31))
    assert dead_letters.purge(older_than=timedelta(days=30)) == 1
    assert list(FailedTask.objects.all()) == [recent]

"""The admin pages of the platform's models load, and dead letters can be replayed from the admin."""

import pytest
from django.urls import reverse

from {{ cookiecutter.project_slug }}.taskqueue.models import FailedTask


@pytest.mark.django_db
@pytest.mark.parametrize("model", ["taskqueue_failedtask", "users_user", "django_celery_beat_periodictask"])
def test_admin_changelist_loads(admin_client, model):
    FailedTask.objects.create(task_id="abc", task_name="taskqueue.purge_failed_tasks", exception="OSError")
    assert admin_client.get(reverse(f"admin:{model}_changelist")).status_code == 200


@pytest.mark.django_db
def test_replay_action_sends_the_selected_failures(admin_client, task_events):
    failed = FailedTask.objects.create(task_id="abc", task_name="taskqueue.purge_failed_tasks", exception="OSError")
    response = admin_client.post(
        reverse("admin:taskqueue_failedtask_changelist"),
        {"action": "replay_selected", "_selected_action": [failed.pk]},
        follow=True,
    )
    assert response.status_code == 200
    failed.refresh_from_db()
    published = task_events.of("taskqueue.purge_failed_tasks", "published")
    assert [event.task_id for event in published] == [failed.replayed_as]

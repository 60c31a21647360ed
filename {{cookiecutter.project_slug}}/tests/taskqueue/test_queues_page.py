"""The admin's "Task queues" page and the DEBUG start page, through Django's test client and a real {% if cookiecutter.broker == "rabbitmq" %}RabbitMQ{% else %}Redis{% endif %}."""

import importlib

import pytest
from django.urls import clear_url_caches

import config.urls
{%- if cookiecutter.broker == "rabbitmq" %}
from config.celery_app import app as celery_app
{%- else %}
from {{ cookiecutter.project_slug }}.taskqueue import broker_redis
{%- endif %}
from {{ cookiecutter.project_slug }}.taskqueue.models import FailedTask
from tests.support.consumers import paused
{%- if cookiecutter.broker == "rabbitmq" %}
from tests.support.waiting import wait_until
{%- endif %}
from tests.taskqueue.tasks import fetch_delivery

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_page_is_for_staff_only(client):
    response = client.get("/admin/queues/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


{% if cookiecutter.broker == "rabbitmq" -%}
def ready_messages(name: str) -> int:
    """RabbitMQ's own count of the messages ready in a queue."""
    with celery_app.connection_for_read() as connection, connection.channel() as channel:
        return channel.queue_declare(queue=name, passive=True).message_count


def test_the_page_shows_each_queue_as_rabbitmq_holds_it(admin_client, celery_workers):
{%- else -%}
def test_the_page_shows_each_queue_as_redis_holds_it(admin_client, celery_workers):
{%- endif %}
    failed = FailedTask.objects.create(task_id="x1", task_name="tests.always_fail", exception="ValueError")
    with paused(celery_workers["io"], "io"):
        for marker in ("a", "b"):
            fetch_delivery.delay(marker)
{%- if cookiecutter.broker == "rabbitmq" %}
        # A quorum queue's count follows a confirmed publish within moments (its Raft log is applied first).
        wait_until(lambda: ready_messages("io") == 2, timeout=10, what=lambda: f"2 in io, not {ready_messages('io')}")
        response = admin_client.get("/admin/queues/")
        depths = {name: ready_messages(name) for name in ("default", "io", "cpu")}
{%- else %}
        response = admin_client.get("/admin/queues/")
        depths = {name: broker_redis.client().llen(name) for name in ("default", "io", "cpu")}
{%- endif %}
    page = response.content.decode()
    assert response.status_code == 200
    assert depths["io"] == 2
    for name, depth in depths.items():
        assert f'<tr data-queue="{name}">' in page
        assert f'data-depth="{depth}"' in page.split(f'data-queue="{name}"', 1)[1].split("</tr>", 1)[0]
    assert "tests.always_fail" in page
    assert f'name="_selected_action" value="{failed.pk}"' in page  # the replay action's form
{%- if cookiecutter.use_flower == "y" %}
    assert 'id="flower"' in page
{%- else %}
    assert 'id="flower"' not in page
{%- endif %}


def test_the_replay_button_replays(admin_client, task_events):
    failed = FailedTask.objects.create(task_id="x2", task_name="tests.add", args=[1, 2], exception="ValueError")
    page = admin_client.get("/admin/queues/").content.decode()
    assert "Replay" in page
    admin_client.post(
        "/admin/taskqueue/failedtask/", {"action": "replay_selected", "_selected_action": [failed.pk], "index": 0}
    )
    failed.refresh_from_db()
    assert failed.replayed_at is not None
    assert task_events.of("tests.add", "published")


@pytest.fixture
def debug_urls(settings):
    def load(debug: bool):
        settings.DEBUG = debug
        importlib.reload(config.urls)
        clear_url_caches()

    yield load
    load(False)


def test_the_start_page_exists_only_with_debug(client, debug_urls):
    debug_urls(True)
    page = client.get("/").content.decode()
    for link in ("/admin/", "/admin/queues/", "/healthz/", "http://localhost:8025/", "/metrics"):
        assert f'href="{link}"' in page
{%- if cookiecutter.use_flower == "y" %}
    assert 'href="http://localhost:5555/"' in page
{%- endif %}
    debug_urls(False)
    assert client.get("/").status_code == 404

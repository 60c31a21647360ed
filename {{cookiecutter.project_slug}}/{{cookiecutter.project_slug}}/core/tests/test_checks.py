"""Each Celery configuration check fires on the mistake it exists for (P30)."""

import pytest
from django.core.management import call_command

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.core import checks
from {{ cookiecutter.project_slug }}.testing.processes import PROCFILE


def _ids(messages):
    return [message.id for message in messages]


def test_project_settings_pass_every_check():
    call_command("check", fail_level="WARNING")


@pytest.fixture
def celery_conf():
    """Change the live Celery configuration for one test, then put it back."""
    conf = celery_app.conf
    saved = {}

    def change(**values):
        for key, value in values.items():
            saved.setdefault(key, conf[key])
            conf[key] = value

    yield change
    for key, value in saved.items():
        conf[key] = value


def test_hard_limit_longer_than_visibility_timeout_is_an_error(celery_conf):
    celery_conf(task_time_limit=7200, broker_transport_options={"visibility_timeout": 3600})
    messages = checks.check_visibility_timeout()
    assert _ids(messages) == ["celery.E001"]
    assert "CELERY_TASK_TIME_LIMIT is 7200 s" in messages[0].msg


def test_missing_hard_limit_is_an_error(celery_conf):
    celery_conf(task_time_limit=None)
    assert _ids(checks.check_visibility_timeout()) == ["celery.E001"]


def test_task_level_hard_limit_is_checked_too(celery_conf):
    from {{ cookiecutter.project_slug }}.core.tests.tasks import add

    celery_conf(broker_transport_options={"visibility_timeout": 600})
    add.time_limit = 900
    try:
        messages = checks.check_visibility_timeout()
    finally:
        add.time_limit = None
    assert any("task core_tests.add is 900 s" in message.msg for message in messages)


def test_countdown_longer_than_visibility_timeout_is_an_error(settings):
    settings.TASK_MAX_COUNTDOWN = 10_000
    assert "celery.E002" in _ids(checks.check_visibility_timeout())


def test_result_backend_visibility_timeout_must_match_broker(celery_conf):
    celery_conf(
        result_backend="redis://127.0.0.1:6379/0",
        result_backend_transport_options={"visibility_timeout": 60},
    )
    assert "celery.E003" in _ids(checks.check_visibility_timeout())


def test_acks_late_without_reject_on_worker_lost_is_an_error(celery_conf):
    celery_conf(task_reject_on_worker_lost=False)
    assert _ids(checks.check_late_ack_needs_reject_on_worker_lost()) == ["celery.E004"]


@pytest.mark.parametrize(
    "change",
    [
        {"accept_content": ["json", "pickle"]},
        {"result_accept_content": ["application/x-python-serialize"]},
        {"task_serializer": "pickle"},
        {"result_serializer": "yaml"},
    ],
)
def test_non_json_serialisation_is_an_error(celery_conf, change):
    celery_conf(**change)
    assert _ids(checks.check_json_only()) == ["celery.E005"]


def test_route_to_a_queue_no_worker_consumes_is_an_error(celery_conf):
    celery_conf(task_routes={"billing.*": {"queue": "billing"}})
    messages = checks.check_every_queue_has_a_worker()
    assert _ids(messages) == ["celery.E006"]
    assert "'billing'" in messages[0].msg


def test_procfile_parsing_reads_every_worker_queue():
    consumers = checks.procfile_worker_queues(PROCFILE, declared={"default", "io", "cpu"})
    assert consumers == {"worker": {"default"}, "worker-io": {"io"}, "worker-cpu": {"cpu"}}


def test_missing_procfile_is_a_warning(settings, tmp_path):
    settings.BASE_DIR = tmp_path
    assert _ids(checks.check_every_queue_has_a_worker()) == ["celery.W001"]


def test_misspelt_celery_setting_is_an_error_with_a_suggestion(settings):
    settings.CELERY_TASK_ACK_LATE = True
    messages = checks.check_celery_setting_names()
    assert _ids(messages) == ["celery.E007"]
    assert messages[0].hint == "Did you mean CELERY_TASK_ACKS_LATE?"

"""Each Celery configuration check fires on the mistake it exists for."""

import shutil

import pytest
from django.core.management import call_command

from {{ cookiecutter.project_slug }}.taskqueue import checks, process_definitions
from tests.taskqueue.tasks import add, fetch_delivery
from tools.procfile import PROJECT_DIR


def _ids(messages):
    return [message.id for message in messages]


def test_project_settings_pass_every_check():
    call_command("check", fail_level="WARNING")


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


def test_a_route_to_a_queue_no_worker_consumes_is_an_error_in_every_process_definition(celery_conf):
    celery_conf(task_routes={"billing.*": {"queue": "billing"}})
    messages = checks.check_every_queue_has_a_worker()
    assert set(_ids(messages)) == {"celery.E006"}
    assert {message.msg.split(" in ")[-1].split(":")[0] for message in messages} == {
        "Procfile",
        "docker-compose.yml",
        "docker-compose.production.yml",
    }
    assert all("'billing'" in message.msg for message in messages)


def test_a_queue_consumed_in_the_procfile_but_not_in_a_compose_file_is_an_error(settings, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(PROJECT_DIR / "compose", project / "compose")
    for name in ("Procfile", *process_definitions.COMPOSE_FILES):
        shutil.copy(PROJECT_DIR / name, project / name)
    production = project / "docker-compose.production.yml"
    production.write_text(production.read_text().replace("command: compose/start-worker-cpu", "command: sleep 1"))
    settings.BASE_DIR = project
    (message,) = checks.check_every_queue_has_a_worker()
    assert message.id == "celery.E006"
    assert "Queue 'cpu'" in message.msg
    assert "in docker-compose.production.yml" in message.msg


def test_every_worker_queue_is_read_from_every_process_definition():
    declared = {"default", "io", "cpu"}
    for source, processes in process_definitions.definitions(PROJECT_DIR).items():
        consumers = process_definitions.consumers(processes, declared)
        assert sorted(set().union(*consumers.values())) == sorted(declared), source


def test_missing_procfile_is_a_warning(settings, tmp_path):
    settings.BASE_DIR = tmp_path
    assert _ids(checks.check_every_queue_has_a_worker()) == ["celery.W001"]


def test_misspelt_celery_setting_is_an_error_with_a_suggestion(settings):
    settings.CELERY_TASK_ACK_LATE = True
    messages = checks.check_celery_setting_names()
    assert _ids(messages) == ["celery.E007"]
    assert messages[0].hint == "Did you mean CELERY_TASK_ACKS_LATE?"


def test_a_route_to_a_queue_that_is_not_declared_is_an_error(celery_conf):
    celery_conf(task_routes={"*.fetch_*": {"queue": "iio"}})
    messages = checks.check_routed_queues_are_declared()
    assert _ids(messages) == ["celery.E009"]
    assert "CELERY_TASK_ROUTES['*.fetch_*'] sends tasks to queue 'iio'" in messages[0].msg


@pytest.mark.parametrize(
    ("command", "pool"),
    [
        ("celery -A config.celery_app worker -Q io -P threads -c 32", "threads"),
        ("celery -A config.celery_app worker --pool=solo", "solo"),
        ("celery -A config.celery_app worker --pool prefork", "prefork"),
        ("celery -A config.celery_app worker -Pthreads", "threads"),
        ("celery -A config.celery_app worker -Q default", "prefork"),
    ],
)
def test_the_pool_of_a_worker_command_is_read(command, pool):
    assert checks.worker_pool(command) == pool


def test_the_io_queue_is_known_to_run_a_pool_without_time_limits():
    # The Procfile's worker-io runs -P threads: celery/concurrency/thread.py sets no timer on a task.
    assert set(checks.unenforcing_queues()) == {"io"}


def test_an_io_task_without_its_own_io_timeout_is_an_error(monkeypatch):
    monkeypatch.setattr(fetch_delivery, "io_timeout", None)
    # A time limit does not count there: the threads pool never enforces it.
    monkeypatch.setattr(fetch_delivery, "time_limit", 10)
    messages = checks.check_unenforced_time_limits()
    assert _ids(messages) == ["celery.E011"]
    assert "Task tests.fetch_delivery runs on queue 'io'" in messages[0].msg
    assert "'worker-io' in Procfile (-P threads)" in messages[0].msg


def test_a_task_on_a_prefork_queue_needs_no_io_timeout(monkeypatch):
    monkeypatch.setattr(add, "io_timeout", None, raising=False)
    assert checks.check_unenforced_time_limits() == []


def test_the_io_workers_grace_period_must_cover_the_soft_shutdown_window(settings, tmp_path):
    # Its SIGTERM is remapped to a soft shutdown (compose/start-worker-io): the window, then it exits.
    project = tmp_path / "project"
    shutil.copytree(PROJECT_DIR / "compose", project / "compose")
    for name in ("Procfile", *process_definitions.COMPOSE_FILES):
        shutil.copy(PROJECT_DIR / name, project / name)
    production = project / "docker-compose.production.yml"
    text = production.read_text()
    io_service = text.index("  worker-io:\n")
    production.write_text(
        text[:io_service] + text[io_service:].replace("command:", "stop_grace_period: 25s\n    command:", 1)
    )
    settings.BASE_DIR = project
    (message,) = checks.check_worker_grace_period()
    assert message.id == "celery.E010"
    assert "'worker-io' in docker-compose.production.yml is killed 25 s after SIGTERM" in message.msg
    assert "CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT 65 s + 10 s margin" in message.msg


def test_a_prefork_workers_grace_period_must_cover_the_hard_time_limit(celery_conf):
    # Warm shutdown: the running tasks finish within the hard limit: 390 s < 385 + 10.
    celery_conf(task_time_limit=385)
    messages = checks.check_worker_grace_period()
    names = {message.msg.split("'")[1] for message in messages}
    assert "worker-cpu" in names
    assert "worker-io" not in names
    assert all("CELERY_TASK_TIME_LIMIT 385 s + 10 s margin" in message.msg for message in messages)


def test_a_tasks_own_longer_time_limit_counts_for_the_worker_of_its_queue(monkeypatch):
    # tests.add runs on the default queue: only that queue's workers need the longer grace period.
    monkeypatch.setattr(add, "time_limit", 5000)
    messages = checks.check_worker_grace_period()
    assert messages
    assert {message.msg.split("'")[1] for message in messages} == {"worker"}
    assert all("task tests.add's time_limit 5000 s + 10 s margin" in message.msg for message in messages)


def test_the_soft_shutdown_window_covers_every_io_timeout_by_default():
    assert checks.check_soft_shutdown_covers_io_timeouts() == []


def test_an_io_timeout_longer_than_the_soft_shutdown_window_is_an_error(monkeypatch):
    # The io worker's SIGTERM is a soft shutdown: a run longer than the window is cut off at every deploy.
    monkeypatch.setattr(fetch_delivery, "io_timeout", 100)
    (message,) = checks.check_soft_shutdown_covers_io_timeouts()
    assert message.id == "celery.E012"
    assert "A run of task tests.fetch_delivery's io_timeout (100 s) on queue 'io'" in message.msg
    assert "(CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT 65 s)" in message.msg
    assert "'worker-io' in Procfile (-P threads)" in message.msg


def test_a_soft_shutdown_window_shorter_than_an_io_tasks_io_timeout_is_an_error(celery_conf, monkeypatch):
    monkeypatch.setattr(fetch_delivery, "io_timeout", 30)
    celery_conf(worker_soft_shutdown_timeout=20)
    messages = checks.check_soft_shutdown_covers_io_timeouts()
    assert _ids(messages) == ["celery.E012"]
    assert "(CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT 20 s)" in messages[0].msg

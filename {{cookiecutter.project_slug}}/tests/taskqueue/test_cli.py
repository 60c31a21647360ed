"""The `celery` command line works with the project's settings, against a real broker and a real worker.

The worker is the Procfile's, started as a subprocess on a broker of its own (tests/support/own_broker.py), so the
in-process test workers do not take its messages.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.database import database_url
from tools.procfile import PROJECT_DIR, ProcfileProcess

NODE = "cli"


@pytest.fixture(scope="module")
def cli_env(module_own_broker, django_db_blocker) -> dict[str, str]:
    with django_db_blocker.unblock():
        database = database_url()
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        **module_own_broker(2).env,
        "DATABASE_URL": database,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


@pytest.fixture(scope="module")
def worker(cli_env, django_db_setup):
    process = ProcfileProcess(
        "worker",
        env={**cli_env, "CELERY_WORKER_INCLUDE": "tests.taskqueue.tasks"},
        extra_args=f"--concurrency 1 -n {NODE}@%h --without-mingle --without-gossip",
    ).start()
    try:
        process.wait_for_output(" ready.", timeout=90)
        yield process
    finally:
        process.stop()


def celery(env: dict[str, str], *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["celery", "-A", "config.celery_app", *argv],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"celery {' '.join(argv)} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result


@pytest.mark.django_db(transaction=True)
def test_inspect_ping_reaches_the_worker(cli_env, worker):
    # With a destination, the command returns as soon as that node answers.
    node = f"{NODE}@{socket.gethostname()}"
    assert "pong" in celery(cli_env, "inspect", "ping", "--destination", node, "--timeout", "10").stdout


@pytest.mark.django_db(transaction=True)
{%- if cookiecutter.result_backend != "none" %}
def test_call_sends_a_task_the_worker_runs_and_result_prints_its_result(cli_env, worker):
    task_id = celery(cli_env, "call", "tests.add", "--args", "[20, 22]").stdout.strip()
    worker.wait_for_output(f"tests.add[{task_id}] succeeded", timeout=30)
    assert celery(cli_env, "result", task_id).stdout.strip() == "42"
{%- else %}
def test_call_sends_a_task_the_worker_runs(cli_env, worker):
    task_id = celery(cli_env, "call", "tests.add", "--args", "[20, 22]").stdout.strip()
    worker.wait_for_output(f"tests.add[{task_id}] succeeded", timeout=30)
{%- endif %}


def test_purge_empties_the_project_queues(cli_env, own_broker):
    # A broker no worker consumes: the message stays queued until purged.
    env = {**cli_env, **own_broker(3).env}
    celery(env, "call", "tests.record_delivery", "--args", '["purged", {}]')
    assert "Purged 1 message" in celery(env, "purge", "--force").stdout


def test_report_names_the_broker_transport_and_the_result_backend(cli_env):
    report = celery(cli_env, "report").stdout
    assert "transport:{% if cookiecutter.broker == "rabbitmq" %}amqp{% else %}redis{% endif %}" in report
{%- if cookiecutter.result_backend == "django-db" %}
    assert "results:{{ cookiecutter.project_slug }}.taskqueue.patches.django_celery_results.DatabaseBackend" in report
{%- endif %}

"""Task metrics from the Procfile's prefork worker, a subprocess: counted once per task, whatever child ran it.

The worker runs on a broker of its own (tests/support/own_broker.py), so the in-process test workers do not take its
messages; /metrics is pointed at its Redis database for the test.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from {{ cookiecutter.project_slug }}.taskqueue import metrics
from tests.support.database import database_url
from tests.support.waiting import wait_until
from tools.procfile import PROJECT_DIR, ProcfileProcess

pytestmark = pytest.mark.django_db(transaction=True)

SEND_FIVE = """
import django

django.setup()
from config.celery_app import app

for _ in range(5):
    app.send_task("tests.add", args=[1, 2])
"""


@pytest.fixture
def worker_broker(own_broker, monkeypatch):
    broker = own_broker(3)
    monkeypatch.setattr(metrics, "redis", lambda: broker.client)
    return broker


@pytest.fixture
def prefork_env(worker_broker):
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        **worker_broker.env,
        "DATABASE_URL": database_url(),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def scrape(client) -> dict:
    content = client.get("/metrics").content.decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(content)
        for sample in family.samples
    }


def default_workers() -> list[str]:
    (default,) = [state for state in metrics.queue_states() if state["name"] == "default"]
    return default["workers"]


def test_a_prefork_worker_counts_each_task_once_and_reports_its_queue(client, prefork_env):
    process = ProcfileProcess(
        "worker",
        env={**prefork_env, "CELERY_WORKER_INCLUDE": "tests.taskqueue.tasks"},
        extra_args="--concurrency 2 -n metrics@%h --without-mingle --without-gossip",
    ).start()
    try:
        process.wait_for_output(" ready.", timeout=90)
        assert wait_until(lambda: "metrics@" in " ".join(default_workers()), what="the worker's key")
        assert scrape(client)[("celery_queue_workers", (("queue", "default"),))] >= 1
        sent = subprocess.run(
            [sys.executable, "-c", SEND_FIVE],
            cwd=PROJECT_DIR,
            env={**prefork_env, "PYTHONPATH": str(PROJECT_DIR)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert sent.returncode == 0, sent.stderr[-3000:]
        samples = wait_until(
            lambda: (
                (s := scrape(client))
                and s.get(("celery_task_runtime_seconds_count", (("task", "tests.add"),))) == 5
                and s
            ),
            what="five runs of tests.add counted",
        )
    finally:
        process.stop()
    assert samples[("celery_task_received_total", (("task", "tests.add"),))] == 5
    assert samples[("celery_task_succeeded_total", (("task", "tests.add"),))] == 5
    # A stopped worker removes its key at once. (The in-process test workers, if running, also write here now.)
    assert not [worker for worker in default_workers() if worker.startswith("metrics@")]

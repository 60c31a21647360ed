"""The upstream patches (taskqueue/patches/) are bound to the versions they were tested with, and say
at start whether they are on."""

import importlib
import logging
import pkgutil
import re
import threading
import tomllib
{%- if cookiecutter.broker == "redis" %}
from types import SimpleNamespace

from kombu import Consumer
{%- endif %}

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.taskqueue import patches
from {{ cookiecutter.project_slug }}.taskqueue.patches import report
{%- if cookiecutter.broker == "rabbitmq" %}
from {{ cookiecutter.project_slug }}.taskqueue.patches.celery_worker import (
    DEAD_LETTERING_CONSUMER,
    ThreadsTaskPool,
    report_consumer,
)
{%- else %}
from {{ cookiecutter.project_slug }}.taskqueue.patches.celery_worker import ThreadsTaskPool
{%- endif %}
from tests.support.waiting import wait_until
from tools.procfile import PROJECT_DIR

PATCH_MODULES = [module.name for module in pkgutil.iter_modules(patches.__path__) if module.name not in {"report"}]


def test_every_installed_patched_package_is_the_minor_version_the_patches_were_tested_with():
    assert patches.untested_versions() == {}


def test_pyproject_caps_every_patched_package_below_its_next_minor_version():
    dependencies = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]["dependencies"]
    patched = {"celery", "django-celery-beat"{% if cookiecutter.broker == "redis" %}, "kombu"{% endif %}}
    if "django_celery_results" in PATCH_MODULES:  # only with the django-db result backend
        patched.add("django-celery-results")
    for package in sorted(patched):
        tested = patches.TESTED_MINOR_VERSIONS[package]
        major, minor = tested.split(".")
        (requirement,) = [line for line in dependencies if re.match(rf"{package}(\[\w+\])?[<>=]", line)]
        assert f">={tested}" in requirement, requirement
        assert f"<{major}.{int(minor) + 1}" in requirement, requirement


def test_each_patch_module_names_its_upstream_versions_issue_and_how_to_remove_it():
    assert PATCH_MODULES
    for name in PATCH_MODULES:
        doc = importlib.import_module(f"{patches.__name__}.{name}").__doc__ or ""
        assert re.search(r"^Upstream: [\w-]+ \d+\.\d+ \(tested with \d+\.\d+\.\d+", doc, re.M), name
        assert re.search(r"celery/[\w-]+#\d+", doc), f"{name} cites no upstream issue"
        assert "To remove it" in doc, name


{% if cookiecutter.broker == "rabbitmq" -%}
def test_a_worker_says_at_start_how_each_of_its_queues_is_declared(celery_workers, caplog):
    caplog.set_level(logging.INFO, logger=report.logger.name)
    report.report_worker_protections(sender=celery_workers["io"].consumer)
    lines = [record.message for record in caplog.records if record.name == report.logger.name]
    (queue_line,) = [line for line in lines if line.startswith("Queue io:")]
    assert "'x-queue-type': 'quorum'" in queue_line
    assert "'x-delivery-limit': 10" in queue_line
    assert "'x-dead-letter-strategy': 'at-least-once'" in queue_line


def test_a_worker_says_at_start_whether_it_rejects_undecodable_messages_into_the_dead_letters(celery_workers, caplog):
    # tests/reliability/test_bad_amqp_messages.py sends them to a real worker.
    assert celery_app.conf.worker_consumer == DEAD_LETTERING_CONSUMER
    caplog.set_level(logging.INFO, logger=report.logger.name)
    report_consumer(sender=celery_workers["io"].consumer)
    assert "Undecodable messages are rejected into the dead-letter queue" in caplog.text
    report_consumer(sender=object())
    (warning,) = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert "a message whose body cannot be decoded is acked and lost" in warning.message
{%- else -%}
def test_a_worker_says_at_start_that_its_queue_gets_the_atomic_claim(celery_workers, caplog):
    caplog.set_level(logging.INFO, logger=report.logger.name)
    report.report_worker_protections(sender=celery_workers["io"].consumer)
    lines = [record for record in caplog.records if record.name == report.logger.name]
    assert any(
        record.levelno == logging.INFO and "queue io: a message is taken and recorded" in record.message
        for record in lines
    ), caplog.text
    assert all(record.levelno < logging.WARNING for record in lines), caplog.text


def test_a_worker_consuming_several_queues_says_so_loudly(caplog):
    caplog.set_level(logging.INFO, logger=report.logger.name)
    with celery_app.connection_for_read() as connection:
        channel = connection.channel()
        for name in ("default", "io", "cpu"):
            Consumer(channel, queues=[celery_app.amqp.queues[name]], no_ack=False).consume()
        report.report_worker_protections(
            sender=SimpleNamespace(task_consumer=SimpleNamespace(channel=channel), app=celery_app)
        )
        channel.close()
    (warning,) = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert "the atomic claim is OFF because it consumes 3 queues (cpu, default, io)" in warning.message


def test_a_worker_on_another_transport_says_no_protection_applies(caplog):
    report.report_worker_protections(sender=SimpleNamespace(task_consumer=SimpleNamespace(channel=object())))
    assert "none of its protections apply" in caplog.text
{%- endif %}


def test_an_untested_version_is_a_warning_at_start(monkeypatch, caplog):
    monkeypatch.setitem(patches.TESTED_MINOR_VERSIONS, "celery", "4.4")
    report.warn_about_untested_versions()
    assert re.search(r"celery \S+ is installed, but the project's patches of it were tested with 4\.4\.x", caplog.text)


def test_a_threads_pool_thread_that_finished_its_task_is_not_counted_as_hung():
    # The executor keeps a finished task's thread alive, idle; only a thread inside a task may hold the exit.
    pool = ThreadsTaskPool(limit=2)
    pool.start()
    try:
        release = threading.Event()
        running = pool.apply_async(release.wait, args=(10,))
        finished = pool.apply_async(lambda: None)
        finished.wait(timeout=10)
        assert len(pool.executor._threads) == 2
        assert len(pool._hung_threads()) == 1
        release.set()
        running.wait(timeout=10)
        wait_until(lambda: pool._hung_threads() == [], timeout=10, what="no thread counted once both tasks ended")
        assert all(worker.is_alive() for worker in pool.executor._threads)
    finally:
        pool.executor.shutdown(wait=True)

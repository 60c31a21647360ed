"""`--compare-defaults` changes Celery's delivery settings to Celery's own defaults, and nothing else."""

import importlib

from celery.app.defaults import DEFAULTS

DELIVERY_SETTINGS = {
    "CELERY_TASK_ACKS_LATE": "task_acks_late",
    "CELERY_TASK_REJECT_ON_WORKER_LOST": "task_reject_on_worker_lost",
    "CELERY_WORKER_PREFETCH_MULTIPLIER": "worker_prefetch_multiplier",
}


def settings_of(module) -> dict:
    return {name: value for name, value in vars(module).items() if name.isupper()}


def test_defaults_settings_are_the_project_settings_with_celery_delivery_defaults(monkeypatch):
    monkeypatch.setenv("BENCH_PROJECT_SETTINGS", "config.settings.test")
    project = settings_of(importlib.import_module("config.settings.test"))
    defaults = settings_of(importlib.reload(importlib.import_module("tools.bench.celery_defaults")))

    differing = {name for name in project.keys() | defaults.keys() if project.get(name) != defaults.get(name)}
    assert differing == set(DELIVERY_SETTINGS)
    for name, celery_name in DELIVERY_SETTINGS.items():
        assert defaults[name] == DEFAULTS[celery_name]

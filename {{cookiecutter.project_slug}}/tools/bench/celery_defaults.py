"""Celery's default delivery settings on top of the project's: for `manage.py celery_bench --compare-defaults` only.

The benchmark sets BENCH_PROJECT_SETTINGS to the settings module it runs with, so the two
runs it compares differ in the three settings below and nothing else.
"""

import importlib
import os

from celery.app import defaults as celery_defaults

_project = importlib.import_module(os.environ.get("BENCH_PROJECT_SETTINGS", "config.settings.local"))
globals().update({name: value for name, value in vars(_project).items() if name.isupper()})

# Celery's own values: ack when the task starts, reserve four messages per pool slot.
CELERY_TASK_ACKS_LATE = celery_defaults.DEFAULTS["task_acks_late"]
CELERY_TASK_REJECT_ON_WORKER_LOST = celery_defaults.DEFAULTS["task_reject_on_worker_lost"]
CELERY_WORKER_PREFETCH_MULTIPLIER = celery_defaults.DEFAULTS["worker_prefetch_multiplier"]

"""kombu's own Redis transport over the project's settings: for `manage.py celery_bench --herd` only.

The benchmark sets BENCH_PROJECT_SETTINGS to the settings module it runs with, so the two runs
it compares differ in the broker transport and nothing else (an explicit broker transport wins
over the one registered for the URL's scheme, taskqueue/patches/kombu.py's install()).
"""

import importlib
import os

_project = importlib.import_module(os.environ.get("BENCH_PROJECT_SETTINGS", "config.settings.local"))
globals().update({name: value for name, value in vars(_project).items() if name.isupper()})

CELERY_BROKER_TRANSPORT = "kombu.transport.redis:Transport"

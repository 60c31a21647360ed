"""Flower's settings file (``celery flower --conf=config/flower.py``, in the Procfile and compose/start-flower).

Flower executes it when it starts and takes the names it knows. Basic auth comes from the per-project credentials
in the environment (FLOWER_USER, FLOWER_PASSWORD) here rather than as ``--basic-auth=user:password``: a command
line is readable by every user of the host (ps, /proc/<pid>/cmdline), a process's environment only by its owner.
"""

import os

_missing = [name for name in ("FLOWER_USER", "FLOWER_PASSWORD") if not os.environ.get(name)]
if _missing:
    raise SystemExit(f"Flower does not start without a password: set {' and '.join(_missing)} in its environment.")

basic_auth = [f"{os.environ['FLOWER_USER']}:{os.environ['FLOWER_PASSWORD']}"]

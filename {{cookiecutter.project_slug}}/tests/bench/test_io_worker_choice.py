"""The io worker's pool is the one the benchmark showed to keep late acks fast (docs/performance.md)."""

import shlex

from django.conf import settings

from {{ cookiecutter.project_slug }}.taskqueue.process_definitions import procfile_commands
from tools.procfile import PROCFILE

GREEN_POOLS = {"gevent", "eventlet"}


def option(argv: list[str], *names: str) -> str | None:
    for index, arg in enumerate(argv):
        for name in names:
            if arg == name and index + 1 < len(argv):
                return argv[index + 1]
            if name.startswith("--") and arg.startswith(f"{name}="):
                return arg.removeprefix(f"{name}=")
    return None


def test_io_worker_pool_does_not_stall_late_acks():
    argv = shlex.split(procfile_commands(PROCFILE)["worker-io"])
    pool = option(argv, "-P", "--pool")
    prefetch = int(option(argv, "--prefetch-multiplier") or settings.CELERY_WORKER_PREFETCH_MULTIPLIER)
    if pool in GREEN_POOLS:
        # A green pool's consumer waits out a 2 s poll whenever late acks use up the prefetch credit.
        assert prefetch >= 2, "a green pool needs --prefetch-multiplier 2 or more with late acks"
    else:
        # The thread pool's acks wake the consumer's event loop at once; prefork would waste RAM on waiting.
        assert pool == "threads"

#!/usr/bin/env python
"""Local development only: run a command and restart it whenever a Python file under /app changes.

docker-compose.yml runs each worker through this (`compose/local/reload.py compose/start-worker`), so edited
tasks are picked up the way runserver picks up edited views. A restart sends the worker SIGTERM, Celery's warm
shutdown: running tasks finish first. A SIGTERM to this script (`docker compose stop`) is passed on the same way,
and the script exits once the command has. If the command dies (a syntax error, say), the next change starts it.
"""

import signal
import subprocess
import sys
import threading

from watchfiles import PythonFilter, watch

WATCH_TICK_MS = 250


def stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.wait()


def main(command: list[str]) -> int:
    if not command:
        sys.exit("usage: compose/local/reload.py COMMAND [ARG...]")
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    # watch() sets up its watcher when first iterated, and then yields an empty set every WATCH_TICK_MS while
    # nothing changes: the command starts at that first yield, so an edit made as it starts is never missed.
    process = None
    for changes in watch(
        ".", watch_filter=PythonFilter(), stop_event=stopping, rust_timeout=WATCH_TICK_MS, yield_on_timeout=True
    ):
        if process is None:
            process = subprocess.Popen(command)
            continue
        if not changes:
            continue
        changed = sorted(path for _, path in changes)
        print(f"reload: {changed[0]} and {len(changed) - 1} more changed; restarting {' '.join(command)}", flush=True)
        stop(process)
        process = subprocess.Popen(command)
    return stop(process) if process is not None else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

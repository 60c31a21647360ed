"""A Django process of the project's own, apart from the test process: what a web server or a shell would be.

Tests use one where the broker settings must be the process's own from its start (Celery reads them when it first
connects), or where the enqueueing must not share the test process's connections and pools.
"""

import json
import os
import select
import subprocess
import sys
from typing import Any

from tools.procfile import PROJECT_DIR

# Django set up, and warmed as a web process is after its first requests: the task modules imported, the broker
# transport loaded and the producer pool built, none of which connects. A loaded machine's slow imports then take
# none of the time a test measures against the broker's bounds: the first send would otherwise pay for them.
WARM_UP = """
import django
django.setup()
from celery import current_app
current_app.loader.import_default_modules()
current_app.producer_pool.connections.connection.get_transport_cls()
"""


def run_python(code: str, env: dict[str, str], *args: str, timeout: float = 120) -> tuple[Any, str]:
    """Run WARM_UP then ``code`` (with ``args`` in sys.argv) in a process of its own, with ``env`` over this one's;
    return the JSON of the last line it printed, and what it logged."""
    done = subprocess.run(
        [sys.executable, "-c", WARM_UP + code, *args],
        cwd=PROJECT_DIR,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"the Django process exited with {done.returncode}: {done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


class WaitingProcess:
    """WARM_UP, then ``code`` in a process of its own that is ready before the test acts: ``code`` reads one line
    from stdin at a time and prints one JSON line for each. The test starts it, waits until it is warm, then sends
    a line at the moment it chooses (during a fault)."""

    def __init__(self, code: str, env: dict[str, str]):
        self.process = subprocess.Popen(
            [sys.executable, "-c", WARM_UP + 'print("ready", flush=True)\n' + code],
            cwd=PROJECT_DIR,
            env={**os.environ, **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def readline(self, timeout: float) -> str:
        assert self.process.stdout is not None
        readable, _, _ = select.select([self.process.stdout], [], [], timeout)
        assert readable, f"the process wrote nothing within {timeout} s: {self.stderr()}"
        return self.process.stdout.readline()

    def wait_ready(self, timeout: float = 90) -> None:
        line = self.readline(timeout)
        assert line.strip() == "ready", f"the process did not start: {line!r} {self.stderr()}"

    def ask(self, line: str, timeout: float = 60) -> Any:
        """Send ``line``; return the JSON of the line it answers."""
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.readline(timeout)
        assert answer, f"the process ended without answering: {self.stderr()}"
        return json.loads(answer)

    def stderr(self) -> str:
        self.process.kill()
        _, err = self.process.communicate(timeout=30)
        return str(err)[-3000:]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=30)

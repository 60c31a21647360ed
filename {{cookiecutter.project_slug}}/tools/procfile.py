"""Run the Procfile's processes as real subprocesses, for tests and benchmarks.

What the tests start is exactly what the Procfile (and so every container) runs:
the command line is read from the Procfile, not repeated here.
"""

import atexit
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

from {{ cookiecutter.project_slug }}.taskqueue.process_definitions import procfile_commands

PROJECT_DIR = Path(__file__).resolve().parents[1]
PROCFILE = PROJECT_DIR / "Procfile"

# Every process's output file, removed when the interpreter that made it exits: read them meanwhile (a failing test
# prints what it needs). Kept, a suite's run left a few hundred in the temporary directory.
_LOGS: set[Path] = set()


@atexit.register
def _remove_logs() -> None:
    for path in _LOGS:
        path.unlink(missing_ok=True)


class ProcfileProcess:
    """One Procfile process in its own process group, its output captured to a file.

    ``extra_args`` are appended to the Procfile command (e.g. a node name or a lower
    concurrency for a test); ``env`` is added to the current environment.
    """

    def __init__(self, name: str, env: dict[str, str] | None = None, extra_args: str = ""):
        self.name = name
        self.command = f"{procfile_commands(PROCFILE)[name]} {extra_args}".strip()
        self.env = {**os.environ, **(env or {})}
        # Commands such as `celery` and `gunicorn` come from the running interpreter's environment.
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env.get('PATH', '')}"
        descriptor, path = tempfile.mkstemp(prefix=f"{name}-", suffix=".log")
        os.close(descriptor)
        self.log_path = Path(path)
        _LOGS.add(self.log_path)
        self.process: subprocess.Popen | None = None

    def start(self) -> Self:
        log = self.log_path.open("ab")
        # `exec` so the shell is replaced and signals reach the process itself, as in the start scripts.
        self.process = subprocess.Popen(
            ["bash", "-c", f"exec {self.command}"],
            cwd=PROJECT_DIR,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        return self._started().pid

    def _started(self) -> subprocess.Popen:
        if self.process is None:
            raise RuntimeError(f"{self.name} was not started")
        return self.process

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.process is not None and self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(
            f"{self.name} did not print {text!r} within {timeout} s; its output:\n{self.output()[-4000:]}"
        )

    def signal(self, signum: int) -> None:
        """Send a signal to the main process only (not its pool children)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signum)

    def wait(self, timeout: float) -> int:
        return self._started().wait(timeout=timeout)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (warm shutdown), then SIGKILL to the whole group if it does not exit in time."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill_group()
        self.kill_group()  # reap any pool child left behind
        return self.process.returncode

    def kill_group(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def __repr__(self) -> str:
        return f"<ProcfileProcess {self.name}: {shlex.quote(self.command)}>"


class StartScript(ProcfileProcess):
    """A compose/start-* script (``compose/start-worker-io``...), run as its container runs it."""

    def __init__(self, script: str, env: dict[str, str] | None = None):
        super().__init__("worker", env=env)
        self.name = script
        self.command = script

"""compose/local/reload.py, which the local compose file runs each worker under.

A changed Python file restarts the command with SIGTERM (a Celery worker's warm shutdown), and a SIGTERM to the
reloader (`docker compose stop`) reaches the command, which the reloader waits for before it exits.
"""

import signal
import subprocess
import sys
import textwrap

from tests.support.waiting import wait_until
from tools.procfile import PROJECT_DIR

RELOADER = PROJECT_DIR / "compose" / "local" / "reload.py"
# The watched command: records each start and each SIGTERM it gets, then waits to be stopped. Its log is in the
# watched directory too, and must not restart it (only Python files do).
COMMAND = textwrap.dedent(
    """
    import os, signal, sys, time
    log = open("events.log", "a", buffering=1)
    # The handler goes in before the start line: the test signals as soon as it reads that line.
    signal.signal(signal.SIGTERM, lambda *_: (log.write(f"sigterm {os.getpid()}\\n"), sys.exit(0)))
    log.write(f"start {os.getpid()}\\n")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.05)
    """
)


def events(directory) -> list[str]:
    log = directory / "events.log"
    return log.read_text().split("\n")[:-1] if log.exists() else []


def test_a_code_change_restarts_the_command_and_a_sigterm_stops_both(tmp_path):
    reloader = subprocess.Popen(
        [sys.executable, str(RELOADER), sys.executable, "-c", COMMAND],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: len(events(tmp_path)) == 1, timeout=15, what="the command's first start")
        (tmp_path / "tasks.py").write_text("VALUE = 1\n")
        wait_until(lambda: len(events(tmp_path)) == 3, timeout=15, what="a restart after the change")
        first, second = events(tmp_path)[0].split()[1], events(tmp_path)[2].split()[1]
        assert events(tmp_path) == [f"start {first}", f"sigterm {first}", f"start {second}"]
        reloader.send_signal(signal.SIGTERM)
        output, _ = reloader.communicate(timeout=15)
    finally:
        if reloader.poll() is None:
            reloader.kill()
            reloader.wait()
    assert reloader.returncode == 0, output
    assert events(tmp_path) == [f"start {first}", f"sigterm {first}", f"start {second}", f"sigterm {second}"]
    assert "reload: " in output
    assert "tasks.py" in output

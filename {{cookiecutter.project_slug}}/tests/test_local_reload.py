"""compose/local/reload.py, which the local compose file runs each worker under.

A changed Python file restarts the command with SIGTERM (a Celery worker's warm shutdown), and a SIGTERM to the
reloader (`docker compose stop`) reaches the command, which the reloader waits for before it exits. The watcher is
live before the command starts: an edit made while it starts is not missed.
"""

import contextlib
import shlex
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator

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


def launches(directory) -> list[str]:
    """The process ids that each run's shell logged as `launch <pid>` before it exec'd the command."""
    return [event.split()[1] for event in events(directory) if event.startswith("launch ")]


def stop_reloader(reloader: subprocess.Popen) -> str:
    """SIGTERM, as `docker compose stop` sends; returns what the reloader printed."""
    if reloader.poll() is None:
        reloader.send_signal(signal.SIGTERM)
    try:
        return reloader.communicate(timeout=15)[0]
    except subprocess.TimeoutExpired:
        reloader.kill()
        return reloader.communicate()[0]


@contextlib.contextmanager
def reloader_running(directory, *command: str) -> Iterator[subprocess.Popen]:
    """The reloader on ``command``; a failed assertion inside shows what the reloader printed."""
    reloader = subprocess.Popen(
        [sys.executable, str(RELOADER), *command], cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        yield reloader
    except AssertionError as error:
        printed = stop_reloader(reloader)
        raise AssertionError(f"{error}\nevents: {events(directory)}\nthe reloader printed:\n{printed}") from None
    finally:
        if reloader.poll() is None:
            reloader.kill()
            reloader.wait()


def test_a_code_change_restarts_the_command_and_a_sigterm_stops_both(tmp_path):
    with reloader_running(tmp_path, sys.executable, "-c", COMMAND) as reloader:
        wait_until(lambda: len(events(tmp_path)) == 1, timeout=15, what="the command's first start")
        (tmp_path / "tasks.py").write_text("VALUE = 1\n")
        wait_until(lambda: len(events(tmp_path)) == 3, timeout=15, what="a restart after the change")
        first, second = events(tmp_path)[0].split()[1], events(tmp_path)[2].split()[1]
        assert events(tmp_path) == [f"start {first}", f"sigterm {first}", f"start {second}"]
        output = stop_reloader(reloader)
        assert reloader.returncode == 0, output
    assert events(tmp_path) == [f"start {first}", f"sigterm {first}", f"start {second}", f"sigterm {second}"]
    assert "reload: " in output
    assert "tasks.py" in output


def test_an_edit_made_while_the_command_starts_restarts_it(tmp_path):
    # The command edits a Python file as its first run starts, before its interpreter is up. A reloader that
    # started the command before its watcher missed this edit in 20 of 20 tries. Each run's shell logs its launch
    # before the edit: the SIGTERM of the restart may reach the first run's interpreter before it has logged
    # anything, or installed its handler (seen under load), so launches are what is counted.
    run = shlex.join([sys.executable, "-c", COMMAND])
    edit_then_run = f"echo \"launch $$\" >> events.log; [ -e tasks.py ] || echo 'VALUE = 1' > tasks.py; exec {run}"
    with reloader_running(tmp_path, "sh", "-c", edit_then_run) as reloader:

        def restarted_and_running():
            pids = launches(tmp_path)
            return len(pids) == 2 and f"start {pids[1]}" in events(tmp_path)

        wait_until(restarted_and_running, timeout=15, what="a restart after the edit")
        output = stop_reloader(reloader)
        assert reloader.returncode == 0, output
    assert len(launches(tmp_path)) == 2, events(tmp_path)
    second = launches(tmp_path)[1]
    assert events(tmp_path)[-2:] == [f"start {second}", f"sigterm {second}"]
    assert "tasks.py" in output

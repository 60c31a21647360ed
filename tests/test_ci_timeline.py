"""The end-of-run summary of where CI's time went (tests/ci_timeline.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from ci_timeline import Timeline
from conftest import LONGEST_FIRST

pytest_plugins = ("pytester",)


def report(nodeid: str, worker: str, start: float, stop: float, cpu: float = 0.0) -> SimpleNamespace:
    return SimpleNamespace(
        nodeid=nodeid,
        start=start,
        stop=stop,
        user_properties=[("cpu seconds", cpu)] if cpu else [],
        node=SimpleNamespace(gateway=SimpleNamespace(id=worker)),
    )


def test_each_workers_busy_time_and_its_long_tests_are_summed_from_every_phase():
    timeline = Timeline(started=1000.0, cpu=None)
    for phase_start, phase_stop in ((1000.0, 1010.0), (1010.0, 1200.0), (1200.0, 1201.0)):  # setup, call, teardown
        timeline.record(report("tests/test_a.py::test_long", "gw0", phase_start, phase_stop))
    timeline.record(report("tests/test_a.py::test_long", "gw0", 1201.0, 1201.0, cpu=55.5))  # on the teardown report
    timeline.record(report("tests/test_a.py::test_short", "gw1", 1001.0, 1031.0))
    timeline.record(report("tests/test_a.py::test_busy", "gw1", 1031.0, 1041.0, cpu=130.0))
    timeline.record(report("tests/test_a.py::test_never_ran", "gw1", 0.0, 0.0))

    lines = timeline.lines()

    assert "gw0: 1 tests, busy 201 s, CPU 56 s, last test ended at 201 s" in lines
    assert "gw1: 2 tests, busy 40 s, CPU 130 s, last test ended at 41 s" in lines
    assert [line for line in lines if line.startswith("  ")] == [
        "  gw0     0-  201 s ( 201 s, CPU   56 s) tests/test_a.py::test_long",
        "  gw1    31-   41 s (  10 s, CPU  130 s) tests/test_a.py::test_busy",
    ]


def test_a_tests_cpu_counts_the_subprocesses_it_waited_for(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    pytester.makeconftest("import ci_timeline\n\ndef pytest_configure(config):\n    ci_timeline.register(config)\n")
    pytester.makepyfile(
        "import subprocess, sys\n"
        "def test_spins():\n"
        "    subprocess.run([sys.executable, '-c', 'import time\\nend = time.process_time() + 1.5\\n"
        "while time.process_time() < end: pass'], check=True)\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    cpu = float(re.search(r"main: 1 tests, busy \d+ s, CPU (\d+) s", result.stdout.str())[1])
    assert cpu >= 1


def test_each_test_started_first_names_exactly_one_collected_test():
    """A renamed or reparametrized long test would silently lose its place at the front of the schedule."""
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=300, check=True,
    ).stdout.splitlines()  # fmt: skip
    for name in LONGEST_FIRST:
        assert len([nodeid for nodeid in collected if name in nodeid]) == 1, name

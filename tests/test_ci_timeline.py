"""The end-of-run summary of where CI's time went (tests/ci_timeline.py)."""

from __future__ import annotations

from types import SimpleNamespace

from ci_timeline import Timeline


def report(nodeid: str, worker: str, start: float, stop: float) -> SimpleNamespace:
    return SimpleNamespace(
        nodeid=nodeid, start=start, stop=stop, node=SimpleNamespace(gateway=SimpleNamespace(id=worker))
    )


def test_each_workers_busy_time_and_its_long_tests_are_summed_from_every_phase():
    timeline = Timeline(started=1000.0, cpu=None)
    for phase_start, phase_stop in ((1000.0, 1010.0), (1010.0, 1200.0), (1200.0, 1201.0)):  # setup, call, teardown
        timeline.record(report("tests/test_a.py::test_long", "gw0", phase_start, phase_stop))
    timeline.record(report("tests/test_a.py::test_short", "gw1", 1001.0, 1031.0))
    timeline.record(report("tests/test_a.py::test_never_ran", "gw1", 0.0, 0.0))

    lines = timeline.lines()

    assert "gw0: 1 tests, busy 201 s, last test ended at 201 s" in lines
    assert "gw1: 1 tests, busy 30 s, last test ended at 31 s" in lines
    assert [line for line in lines if line.startswith("  ")] == [
        "  gw0     0-  201 s ( 201 s) tests/test_a.py::test_long"
    ]

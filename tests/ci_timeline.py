"""Where a template test run's time went: each xdist worker's busy time and long tests, and the CPU it used.

CI has a time budget (README.md, "Template tests") on a 2-core machine; this summary, printed at the end of every
run, shows whether a run was bound by work, by the schedule (one worker busy long after the others) or by CPU.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field

import pytest

# Tests that took at least this long, or used this much CPU, are listed with their start and end on their worker.
LONG_TEST = 120.0


def cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) clock ticks of every core since boot, from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def cpu_seconds() -> float:
    """CPU this process and its waited-for descendants used so far (daemons that detached are not counted)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class Span:
    worker: str
    start: float
    stop: float
    cpu: float = 0.0


@dataclass
class Timeline:
    started: float = field(default_factory=time.time)
    cpu: tuple[int, int] | None = field(default_factory=cpu_jiffies)
    spans: dict[str, Span] = field(default_factory=dict)

    def record(self, report: pytest.TestReport) -> None:
        if not report.start:
            return
        node = getattr(report, "node", None)  # set by xdist on the controller
        worker = node.gateway.id if node is not None else "main"
        cpu = sum(value for name, value in report.user_properties if name == "cpu seconds")
        span = self.spans.get(report.nodeid)
        if span is None:
            self.spans[report.nodeid] = Span(worker, report.start, report.stop, cpu)
        else:
            span.start, span.stop = min(span.start, report.start), max(span.stop, report.stop)
            span.cpu += cpu

    def lines(self) -> list[str]:
        now = time.time()
        wall = now - self.started
        lines = [f"wall {wall:.0f} s"]
        cpu_now = cpu_jiffies()
        if self.cpu and cpu_now and cpu_now[1] > self.cpu[1]:
            share = (cpu_now[0] - self.cpu[0]) / (cpu_now[1] - self.cpu[1])
            cores = os.cpu_count() or 1
            lines[0] += f"; CPU busy {share:.0%} of {cores} cores ({share * cores:.2f} cores on average)"
        for worker in sorted({span.worker for span in self.spans.values()}):
            spans = sorted((s for s in self.spans.values() if s.worker == worker), key=lambda s: s.start)
            busy = sum(s.stop - s.start for s in spans)
            cpu = sum(s.cpu for s in spans)
            last = max(s.stop for s in spans) - self.started
            lines.append(
                f"{worker}: {len(spans)} tests, busy {busy:.0f} s, CPU {cpu:.0f} s, last test ended at {last:.0f} s"
            )
        long = sorted(
            ((nodeid, s) for nodeid, s in self.spans.items() if s.stop - s.start >= LONG_TEST or s.cpu >= LONG_TEST),
            key=lambda item: (item[1].worker, item[1].start),
        )
        for nodeid, s in long:
            lines.append(
                f"  {s.worker} {s.start - self.started:5.0f}-{s.stop - self.started:5.0f} s "
                f"({s.stop - s.start:4.0f} s, CPU {s.cpu:4.0f} s) {nodeid}"
            )
        return lines


class CpuPlugin:
    """On the process that runs the tests: the CPU each test used, its subprocesses' included, on its report."""

    def __init__(self) -> None:
        self.before: dict[str, float] = {}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.before[item.nodeid] = cpu_seconds()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        if call.when == "teardown" and item.nodeid in self.before:
            item.user_properties.append(("cpu seconds", cpu_seconds() - self.before.pop(item.nodeid)))
        return (yield)


class TimelinePlugin:
    def __init__(self) -> None:
        self.timeline = Timeline()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.timeline.record(report)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        terminalreporter.write_sep("=", "time by worker (tests/ci_timeline.py)")
        for line in self.timeline.lines():
            terminalreporter.write_line(line)


def register(config: pytest.Config) -> None:
    """Measure CPU where tests run; summarise on the controller (an xdist worker has `workerinput`)."""
    config.pluginmanager.register(CpuPlugin(), "ci-timeline-cpu")
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(TimelinePlugin(), "ci-timeline")

"""The five workloads (a-e): each sends real tasks to the running workers and returns its figures."""

import functools
import math
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import redis
from django.db import transaction

from tools.bench import tasks
from tools.bench.errors import BenchmarkError
from tools.bench.reporting import done_key, latency_key

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Sizes:
    noop_tasks: int
    io_tasks: int
    io_seconds: float
    cpu_tasks: int
    cpu_task_seconds: float
    enqueue_samples: int
    end_to_end_samples: int


FULL = Sizes(2000, 1000, 0.1, 40, 0.25, 500, 200)
# Enough to exercise every path, for tests and a first look; its figures are not worth quoting.
QUICK = Sizes(100, 100, 0.1, 4, 0.05, 30, 20)


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least `fraction` of samples at or below it."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def milliseconds(samples: list[float], *fractions: float) -> dict[str, float]:
    return {f"p{round(fraction * 100)}_ms": percentile(samples, fraction) * 1000 for fraction in fractions}


@dataclass
class Workloads:
    """Runs the workloads against workers already consuming `default`, `io` and `cpu`."""

    client: redis.Redis
    sizes: Sizes
    concurrency: dict[str, int]
    progress: Progress

    def wait_until_done(self, run_id: str, label: str, expected: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        done = 0
        while done < expected:
            done = int(self.client.get(done_key(run_id)) or 0)
            self.progress(label, done, expected)
            if done < expected and time.monotonic() > deadline:
                raise BenchmarkError(f"{label}: {done} of {expected} tasks done after {timeout:.0f} s.")
            time.sleep(0.02)

    def run_burst(self, label: str, expected: int, timeout: float, send: Callable[[str], None]) -> float:
        """Send `expected` tasks as fast as possible; seconds from the first send to the last task done."""
        run_id = uuid.uuid4().hex
        started = time.perf_counter()
        for _ in range(expected):
            send(run_id)
        self.wait_until_done(run_id, label, expected, timeout)
        return time.perf_counter() - started

    def noop_throughput(self) -> dict:
        """(a) No-op tasks on `default`: what the delivery settings cost per message."""
        count = self.sizes.noop_tasks
        seconds = self.run_burst(
            "(a) no-op", count, 120 + count / 10, lambda run_id: tasks.noop.apply_async((run_id,), queue="default")
        )
        return {"tasks": count, "seconds": seconds, "tasks_per_second": count / seconds}

    def io_wall_time(self) -> dict:
        """(b) Sleeping tasks on `io`, standing for HTTP calls: wall time against the ideal."""
        count, pause = self.sizes.io_tasks, self.sizes.io_seconds
        ideal = count * pause / self.concurrency["io"]
        seconds = self.run_burst(
            "(b) io sleeps",
            count,
            120 + ideal * 20,
            lambda run_id: tasks.sleep.apply_async((run_id, pause), queue="io"),
        )
        return {
            "tasks": count,
            "task_seconds": pause,
            "concurrency": self.concurrency["io"],
            "seconds": seconds,
            "ideal_seconds": ideal,
            "ideal_over_actual": ideal / seconds,
        }

    def cpu_throughput(self) -> dict:
        """(c) CPU-bound tasks on `cpu`: throughput, and how many cores' worth of work it got done."""
        rounds, task_seconds = calibrate_spin(self.sizes.cpu_task_seconds)
        count = self.sizes.cpu_tasks
        seconds = self.run_burst(
            "(c) cpu",
            count,
            120 + count * task_seconds * 20,
            lambda run_id: tasks.burn_cpu.apply_async((run_id, rounds), queue="cpu"),
        )
        return {
            "tasks": count,
            "task_cpu_seconds": task_seconds,
            "concurrency": self.concurrency["cpu"],
            "cores": os.cpu_count(),
            "seconds": seconds,
            "tasks_per_second": count / seconds,
            "cores_used": count * task_seconds / seconds,
        }

    def enqueue_latency(self) -> dict:
        """(d) How long `delay()` blocks the caller, directly and through `transaction.on_commit`."""
        count = self.sizes.enqueue_samples
        run_id = uuid.uuid4().hex
        direct, on_commit = [], []
        for _ in range(count):
            started = time.perf_counter()
            tasks.noop.delay(run_id)
            direct.append(time.perf_counter() - started)
        for _ in range(count):
            started = time.perf_counter()
            # What a view that writes pays: the commit, then the send.
            with transaction.atomic():
                transaction.on_commit(functools.partial(tasks.noop.delay, run_id))
            on_commit.append(time.perf_counter() - started)
        # Let the workers drain these before the next workload measures anything.
        self.wait_until_done(run_id, "(d) enqueue", 2 * count, 120 + count / 10)
        return {
            "samples": count,
            "delay": milliseconds(direct, 0.5, 0.95, 0.99),
            "on_commit": milliseconds(on_commit, 0.5, 0.95, 0.99),
        }

    def end_to_end_latency(self) -> dict:
        """(e) From `delay()` to the task starting on an idle `default` worker, one task at a time."""
        count = self.sizes.end_to_end_samples
        run_id = uuid.uuid4().hex
        samples = []
        for index in range(count):
            tasks.record_start.delay(run_id, time.time())
            samples.append(self.wait_for_latency(run_id, f"(e) end-to-end: task {index + 1} of {count}"))
            self.progress("(e) end-to-end", index + 1, count)
        return {"samples": count, **milliseconds(samples, 0.5, 0.95, 0.99)}

    def wait_for_latency(self, run_id: str, label: str, timeout: float = 60.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # Short blocking pops: redis-py's socket timeout (5 s by default) would cut a longer one.
            reply = self.client.blpop([latency_key(run_id)], timeout=1)
            if reply is not None:
                return float(reply[1])
        raise BenchmarkError(f"{label} did not start within {timeout:.0f} s.")

    def run_all(self) -> dict:
        return {
            "a": self.noop_throughput(),
            "b": self.io_wall_time(),
            "c": self.cpu_throughput(),
            "d": self.enqueue_latency(),
            "e": self.end_to_end_latency(),
        }


def calibrate_spin(target_seconds: float) -> tuple[int, float]:
    """Rounds of `spin` that take about `target_seconds` on one core here, and their measured duration."""
    rounds = 10_000
    while True:
        started = time.process_time()
        tasks.spin(rounds)
        elapsed = time.process_time() - started
        if elapsed >= target_seconds / 4:
            break
        rounds *= 4
    rounds = max(1, round(rounds * target_seconds / elapsed))
    started = time.process_time()
    tasks.spin(rounds)
    return rounds, time.process_time() - started

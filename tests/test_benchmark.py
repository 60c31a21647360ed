"""`manage.py celery_bench` runs every workload on the Procfile's real workers and a real Redis (P27).

Only that it completes and reports figures is asserted: timings on a shared CI machine are
not a test. The generated README quotes a full `--compare-defaults` run.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from numbers import Real

import pytest
from bakery import free_port, run_in

# Each workload and the figures it must report.
WORKLOAD_FIGURES = {
    "a": ("tasks_per_second", "seconds"),
    "b": ("seconds", "ideal_seconds"),
    "c": ("tasks_per_second", "cores_used"),
    "d": ("delay", "on_commit"),
    "e": ("p50_ms", "p95_ms", "p99_ms"),
}


@pytest.fixture
def redis_server() -> Iterator[str]:
    """A real redis-server on a free loopback port; its URL points at database 0, the user's data."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.fail("redis-server is not installed: `apt-get install redis-server` (see .ci/run).")
    port = free_port()
    directory = tempfile.mkdtemp(prefix="redis-bench-test-")
    process = subprocess.Popen(
        [executable, "--bind", "127.0.0.1", "--port", str(port), "--dir", directory, "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail(f"redis-server did not start on port {port}")
        time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(directory, ignore_errors=True)


def redis_cli(url: str, *command: str) -> str:
    port = url.rsplit(":", 1)[1].split("/")[0]
    result = subprocess.run(
        ["redis-cli", "-p", port, *command], capture_output=True, text=True, timeout=30, check=True
    )
    return result.stdout.strip()


def celery_bench(project, venv, redis_url: str, *options: str, timeout: float = 300, check: bool = True):
    """`manage.py celery_bench` in the bake, on the test's redis-server."""
    return run_in(
        project, "python", "manage.py", "celery_bench", *options,
        venv=venv, env={"REDIS_URL": redis_url}, timeout=timeout, check=check,
    )  # fmt: skip


def assert_numbers(figures: dict, path: str) -> None:
    for key, value in figures.items():
        if isinstance(value, dict):
            assert_numbers(value, f"{path}.{key}")
        elif not isinstance(value, str):
            assert isinstance(value, Real), f"{path}.{key} is {value!r}"
            assert value >= 0, f"{path}.{key} is {value!r}"


def assert_every_workload_with_and_without_defaults(report: dict) -> None:
    for run in ("project", "defaults"):
        workers = report["runs"][run]["workers"]
        assert set(workers) == {"default", "io", "cpu"}, f"{run} workers: {workers}"
        workloads = report["runs"][run]["workloads"]
        assert set(workloads) == set(WORKLOAD_FIGURES)
        for workload, figures in WORKLOAD_FIGURES.items():
            for figure in figures:
                assert figure in workloads[workload], f"{run} ({workload}) lacks {figure}: {workloads[workload]}"
            assert_numbers(workloads[workload], f"{run}.{workload}")
    assert report["runs"]["project"]["settings_module"] == "config.settings.local"
    assert report["runs"]["defaults"]["settings_module"] == "tools.bench.celery_defaults"
    assert len(report["ratios"]) == 6


def test_quick_benchmark_reports_every_workload_with_and_without_celery_defaults(bake, template_venv, redis_server):
    project = bake()
    redis_cli(redis_server, "SET", "users:data", "kept")

    result = celery_bench(project, template_venv, redis_server, "--quick", "--compare-defaults", "--json")

    report = json.loads(result.stdout)
    assert_every_workload_with_and_without_defaults(report)
    # The project's database 0 is not the benchmark's, and the benchmark's is left empty.
    assert redis_cli(redis_server, "GET", "users:data") == "kept"
    assert redis_cli(redis_server, "-n", "15", "DBSIZE") == "0"


def test_quick_metrics_comparison_reports_throughput_with_metrics_on_and_off(bake, template_venv, redis_server):
    project = bake()
    result = celery_bench(project, template_venv, redis_server, "--quick", "--compare-metrics", "--json")
    figures = json.loads(result.stdout)["metrics"]
    throughput = figures["tasks_per_second"]
    assert set(throughput) == {"metrics_on", "metrics_off"}
    assert_numbers(throughput, "tasks_per_second")
    assert figures["ratio_on_to_off"] == pytest.approx(throughput["metrics_on"] / throughput["metrics_off"])
    assert "cost_percent" in figures
    assert redis_cli(redis_server, "-n", "15", "DBSIZE") == "0"


def test_benchmark_refuses_a_database_holding_keys_without_yes(bake, template_venv, redis_server):
    project = bake()
    redis_cli(redis_server, "-n", "15", "SET", "someone:else", "precious")

    result = celery_bench(project, template_venv, redis_server, "--quick", timeout=120, check=False)

    assert result.returncode != 0
    assert "--yes" in result.stderr
    assert redis_cli(redis_server, "-n", "15", "GET", "someone:else") == "precious"


def test_quick_herd_run_compares_the_project_transport_with_kombus_on_two_workers(bake, template_venv, redis_server):
    project = bake()
    result = celery_bench(project, template_venv, redis_server, "--herd", "--quick", "--json")
    herd = json.loads(result.stdout)["herd"]
    assert set(herd["figures"]) == {"project", "stock"}
    for transport, runs in herd["figures"].items():
        assert set(runs) == {"2"}, runs
        assert_numbers(runs["2"], f"herd.{transport}")
        assert runs["2"]["commands_per_task"] > 0
    # The project's workers took each message with one claim script, woken one at a time; the stock run
    # really ran kombu's own transport, which runs no script.
    assert 1 <= herd["figures"]["project"]["2"]["scripts_per_task"] < 1.2
    assert herd["figures"]["stock"]["2"]["scripts_per_task"] == 0
    assert set(herd["project_to_stock"]["2"]) == {"commands_per_task", "tasks_per_second"}
    assert redis_cli(redis_server, "-n", "15", "DBSIZE") == "0"


def test_rabbitmq_project_benchmarks_every_workload_on_a_rabbitmq_node_it_starts(bake, template_venv):
    project = bake(broker="rabbitmq")
    # Nothing answers at the project's own broker and Redis URLs: every figure comes from the nodes it starts.
    unused = {
        "CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}//",
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
    }  # pragma: allowlist secret

    result = run_in(
        project, "python", "manage.py", "celery_bench", "--start-rabbitmq", "--quick", "--compare-defaults", "--json",
        venv=template_venv, env=unused, timeout=600,
    )  # fmt: skip

    report = json.loads(result.stdout)
    assert_every_workload_with_and_without_defaults(report)
    assert report["machine"]["rabbitmq_server"].count(".") == 2, report["machine"]
    assert report["machine"]["redis_server"], report["machine"]


def test_rabbitmq_project_refuses_the_redis_only_herd_mode_saying_why(bake, template_venv):
    project = bake(broker="rabbitmq")
    result = run_in(
        project, "python", "manage.py", "celery_bench", "--herd", "--quick",
        venv=template_venv, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "broker is RabbitMQ" in result.stderr
    assert "Redis commands per task" in result.stderr

"""One benchmark run: start the workers with a settings module, run every workload, stop the workers."""

import os
import statistics

import redis
from celery import Celery

from tools.bench.errors import BenchmarkError
from tools.bench.reporting import redis_client
from tools.bench.workers import BenchmarkWorkers
from tools.bench.workloads import Progress, Sizes, Workloads

# Celery's defaults over the project's settings; see tools/bench/celery_defaults.py.
CELERY_DEFAULTS_SETTINGS = "tools.bench.celery_defaults"


def run_workloads(
    name: str,
    app: Celery,
    redis_url: str,
    settings_module: str,
    sizes: Sizes,
    progress: Progress,
    env: dict[str, str] | None = None,
    only_noop: bool = False,
) -> dict:
    def labelled(label: str, done: int, total: int) -> None:
        progress(f"[{name}] {label}", done, total)

    client = redis_client(redis_url)
    empty(app, client, redis_url)
    workers = BenchmarkWorkers(app, redis_url, settings_module, env)
    try:
        labelled("workers ready", 0, len(workers.processes))
        workers.start()
        labelled("workers ready", len(workers.processes), len(workers.processes))
        described = workers.describe()
        concurrency = {queue: worker["concurrency"] for queue, worker in described.items()}
        try:
            workloads = Workloads(client, sizes, concurrency, labelled)
            figures = {"a": workloads.noop_throughput()} if only_noop else workloads.run_all()
        except BenchmarkError as error:
            tails = "\n".join(f"--- {process} ---\n{workers.output(process)[-2000:]}" for process in workers.processes)
            raise BenchmarkError(f"{error}\n{tails}") from error
    finally:
        workers.stop()
        empty(app, client, redis_url)
    return {"settings_module": settings_module, "workers": described, "workloads": figures}


def use_broker(app: Celery, url: str) -> None:
    """Send from this process to `url`: Celery reads CELERY_BROKER_URL from the environment before its settings."""
    os.environ["CELERY_BROKER_URL"] = url
    app.conf.broker_url = url


def empty(app: Celery, client: redis.Redis, redis_url: str) -> None:
    """Flush the benchmark's Redis database (claimed: nothing there is anyone else's); on RabbitMQ, whose queues are
    not in it, purge the task queues too (claimed as well: scratch_rabbitmq.claim_queues)."""
    client.flushdb()
    if app.conf.broker_url != redis_url:
        app.control.purge()


def median_figures(rounds: list[dict]) -> dict:
    """Each number's median over the rounds (same keys in each round); anything else from the first round."""
    combined = {}
    for key, first in rounds[0].items():
        values = [figures[key] for figures in rounds]
        if isinstance(first, dict):
            combined[key] = median_figures(values)
        elif isinstance(first, int | float) and not isinstance(first, bool):
            combined[key] = statistics.median(values)
        else:
            combined[key] = first
    return combined


def run_benchmark(
    app: Celery,
    redis_url: str,
    project_settings: str,
    sizes: Sizes,
    progress: Progress,
    compare_defaults: bool,
    rounds: int,
    broker_url: str | None = None,
) -> dict[str, dict]:
    """The project's settings and (if asked) Celery's defaults on the same pools, `rounds` times each.

    The broker is the benchmark's Redis database unless `broker_url` names another (RabbitMQ).
    """
    # Everything this process sends goes to the benchmark's broker, like its workers.
    use_broker(app, broker_url or redis_url)
    configurations: dict[str, tuple[str, dict[str, str]]] = {"project": (project_settings, {})}
    if compare_defaults:
        configurations["defaults"] = (CELERY_DEFAULTS_SETTINGS, {"BENCH_PROJECT_SETTINGS": project_settings})
    measured: dict[str, list[dict]] = {name: [] for name in configurations}
    # Alternate the configurations and keep medians, so a burst of load from elsewhere on the
    # machine skews one round of one side rather than the comparison.
    for number in range(1, rounds + 1):
        for name, (settings_module, env) in configurations.items():
            label = f"{name} {number}/{rounds}"
            measured[name].append(run_workloads(label, app, redis_url, settings_module, sizes, progress, env))
    return {
        name: {
            "settings_module": results[0]["settings_module"],
            "workers": results[0]["workers"],
            "rounds": len(results),
            "workloads": median_figures([result["workloads"] for result in results]),
            "workloads_per_round": [result["workloads"] for result in results],
        }
        for name, results in measured.items()
    }


def run_metrics_comparison(
    app: Celery,
    redis_url: str,
    project_settings: str,
    sizes: Sizes,
    progress: Progress,
    rounds: int,
    broker_url: str | None = None,
) -> dict:
    """Workload (a), no-op throughput, with the task metrics on and off (TASK_METRICS), alternated `rounds` times."""
    use_broker(app, broker_url or redis_url)
    configurations = {"metrics_on": {"TASK_METRICS": "true"}, "metrics_off": {"TASK_METRICS": "false"}}
    measured: dict[str, list[float]] = {name: [] for name in configurations}
    for number in range(1, rounds + 1):
        # Which one runs first alternates too, so neither always gets the machine right after a flush or a start.
        order = list(configurations.items())
        for name, env in order if number % 2 else reversed(order):
            label = f"{name} {number}/{rounds}"
            run = run_workloads(label, app, redis_url, project_settings, sizes, progress, env, only_noop=True)
            measured[name].append(run["workloads"]["a"]["tasks_per_second"])
    on, off = statistics.median(measured["metrics_on"]), statistics.median(measured["metrics_off"])
    return {
        "workload": "a (no-op tasks on default)",
        "tasks": sizes.noop_tasks,
        "rounds": rounds,
        "tasks_per_second": {"metrics_on": on, "metrics_off": off},
        "tasks_per_second_per_round": measured,
        "ratio_on_to_off": on / off,
        # Positive: the metrics slow the workers down by this share of their throughput.
        "cost_percent": (1 - on / off) * 100,
    }

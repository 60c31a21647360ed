"""Several workers on one queue: Redis commands per task and throughput, the project's transport against kombu's.

Each configuration starts N copies of the Procfile's `worker` process with one pool slot each
(`-c 1`), all consuming `default`, sends no-op tasks as fast as it can, and counts every command
Redis ran meanwhile (`INFO commandstats`, which includes the commands a Lua script runs), so a
design that wakes every waiting worker for each message shows as more commands per task.
"""

import secrets
import signal
import time
import uuid

import redis
from celery import Celery

from tools.bench import tasks
from tools.bench.errors import BenchmarkError
from tools.bench.reporting import done_key
from tools.bench.runner import use_broker
from tools.bench.workloads import Progress
from tools.procfile import ProcfileProcess

# kombu's own Redis transport over the project's settings; see tools/bench/stock_transport.py.
STOCK_TRANSPORT_SETTINGS = "tools.bench.stock_transport"
CONSUMERS = (1, 4, 8)
QUICK_CONSUMERS = (2,)


def command_calls(client: redis.Redis) -> dict[str, int]:
    """Calls per command since the server started (server-wide: every database)."""
    return {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in client.info("commandstats").items()}


def start_consumers(app: Celery, count: int, redis_url: str, settings_module: str, project_settings: str):
    token = secrets.token_hex(3)
    env = {
        "REDIS_URL": redis_url,
        "DJANGO_SETTINGS_MODULE": settings_module,
        "BENCH_PROJECT_SETTINGS": project_settings,
        "CELERY_DEFAULT_CONCURRENCY": "1",
    }
    processes = [
        ProcfileProcess("worker", env=env, extra_args=f"-n herd{number}-{token}@%h -I {tasks.__name__}").start()
        for number in range(count)
    ]
    deadline = time.monotonic() + 60 + 20 * count
    answered: set[str] = set()
    while len(answered) < count:
        for process in processes:
            if process.process is not None and process.process.poll() is not None:
                raise BenchmarkError(f"a herd worker exited:\n{process.output()[-3000:]}")
        answered |= {node for reply in app.control.ping(timeout=1.0) for node in reply if token in node}
        if len(answered) < count and time.monotonic() > deadline:
            stop_consumers(processes)
            raise BenchmarkError(f"{count - len(answered)} of {count} herd workers did not answer a ping.")
    return processes


def stop_consumers(processes: list[ProcfileProcess]) -> None:
    for process in processes:
        process.signal(signal.SIGTERM)
    for process in processes:
        process.stop(timeout=60.0)
        process.log_path.unlink(missing_ok=True)


def measure(client: redis.Redis, count: int, progress: Progress, label: str) -> dict:
    time.sleep(1.5)  # the workers' start-up traffic is over: every one is waiting on the queue
    run_id = uuid.uuid4().hex
    before = command_calls(client)
    started = time.perf_counter()
    for _ in range(count):
        tasks.noop.apply_async((run_id,), queue="default")
    deadline = time.monotonic() + 60 + count / 10
    done = 0
    while done < count:
        done = int(client.get(done_key(run_id)) or 0)
        progress(label, done, count)
        if done < count and time.monotonic() > deadline:
            raise BenchmarkError(f"{label}: {done} of {count} tasks done in time.")
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    after = command_calls(client)
    delta = {name: calls - before.get(name, 0) for name, calls in after.items() if calls > before.get(name, 0)}
    total = sum(delta.values())
    return {
        "tasks": count,
        "seconds": seconds,
        "tasks_per_second": count / seconds,
        "commands_per_task": total / count,
        # Lua scripts Redis ran per task: the project transport's claims (kombu's transport runs none).
        "scripts_per_task": delta.get("evalsha", 0) / count,
        "commands": dict(sorted(delta.items(), key=lambda item: -item[1])[:12]),
    }


def run_herd(
    app: Celery,
    redis_url: str,
    project_settings: str,
    progress: Progress,
    *,
    consumers: tuple[int, ...] = CONSUMERS,
    tasks_per_run: int = 1000,
    rounds: int = 1,
) -> dict:
    use_broker(app, redis_url)
    client = redis.Redis.from_url(redis_url)
    transports = {"project": project_settings, "stock": STOCK_TRANSPORT_SETTINGS}
    runs: dict[str, dict[str, list[dict]]] = {name: {str(count): [] for count in consumers} for name in transports}
    for number in range(1, rounds + 1):
        for count in consumers:
            # Alternated, so load from elsewhere on the machine skews one round of one side, not the comparison.
            order = list(transports.items())
            for name, settings_module in order if number % 2 else reversed(order):
                label = f"[herd {name}, {count} worker(s), {number}/{rounds}]"
                client.flushdb()
                processes = start_consumers(app, count, redis_url, settings_module, project_settings)
                try:
                    runs[name][str(count)].append(measure(client, tasks_per_run, progress, label))
                finally:
                    stop_consumers(processes)
                    client.flushdb()
    figures = {
        name: {count: median_run(results) for count, results in by_count.items()} for name, by_count in runs.items()
    }
    ratios = {
        count: {
            "commands_per_task": figures["project"][count]["commands_per_task"]
            / figures["stock"][count]["commands_per_task"],
            "tasks_per_second": figures["project"][count]["tasks_per_second"]
            / figures["stock"][count]["tasks_per_second"],
        }
        for count in figures["project"]
    }
    return {"tasks": tasks_per_run, "rounds": rounds, "figures": figures, "project_to_stock": ratios}


def median_run(results: list[dict]) -> dict:
    """The round with the median throughput (its figures belong together)."""
    ordered = sorted(results, key=lambda result: result["tasks_per_second"])
    return {**ordered[len(ordered) // 2], "rounds": len(results)}


def herd_table(herd: dict) -> str:
    lines = [
        f"Workers (prefork -c 1) on one queue, {herd['tasks']} no-op tasks, median of {herd['rounds']} round(s):",
        "",
        "| workers | transport | tasks/s | Redis commands per task | scripts per task |",
        "|---|---|---|---|---|",
    ]
    for count in herd["figures"]["project"]:
        for name in ("project", "stock"):
            run = herd["figures"][name][count]
            lines.append(
                f"| {count} | {name} | {run['tasks_per_second']:.0f} | {run['commands_per_task']:.2f} "
                f"| {run['scripts_per_task']:.2f} |"
            )
    lines.append("")
    for count, ratio in herd["project_to_stock"].items():
        lines.append(
            f"{count} worker(s), project/stock: commands per task {ratio['commands_per_task']:.2f}x, "
            f"throughput {ratio['tasks_per_second']:.2f}x"
        )
    return "\n".join(lines) + "\n"

"""The Procfile's worker processes, started as the Procfile starts them, against the benchmark's broker and Redis."""

import secrets
import signal
import time

from celery import Celery

from {{ cookiecutter.project_slug }}.taskqueue import process_definitions
from tools.bench.errors import BenchmarkError
from tools.bench.scratch_redis import worker_role_env
from tools.procfile import PROJECT_DIR, ProcfileProcess

BENCHMARK_TASKS_MODULE = "tools.bench.tasks"


def short_pool_name(implementation: str) -> str:
    """'celery.concurrency.prefork:TaskPool' -> 'prefork'."""
    return implementation.partition(":")[0].rsplit(".", 1)[-1]


class BenchmarkWorkers:
    """Every Procfile process that runs a Celery worker, with its own node name and the benchmark tasks.

    Only the broker and Redis URLs and DJANGO_SETTINGS_MODULE differ from what the Procfile runs; pool, concurrency
    and queues are the Procfile's own (and its environment variables, e.g. CELERY_IO_CONCURRENCY).
    """

    def __init__(self, app: Celery, redis_url: str, settings_module: str, env: dict[str, str] | None = None):
        self.app = app
        self.token = secrets.token_hex(3)
        procfile = process_definitions.definitions(PROJECT_DIR)[process_definitions.PROCFILE]
        self.queues = process_definitions.consumers(procfile, {queue.name for queue in app.conf.task_queues})
        worker_env = {
            "CELERY_BROKER_URL": app.conf.broker_url,
            "REDIS_URL": redis_url,
            **worker_role_env(redis_url),
            "DJANGO_SETTINGS_MODULE": settings_module,
            **(env or {}),
        }
        self.processes = {
            name: ProcfileProcess(
                name,
                env=worker_env,
                # A later -n wins over the Procfile's; -I loads the bench.* tasks in these workers only.
                extra_args=f"-n bench-{name}-{self.token}@%h -I {BENCHMARK_TASKS_MODULE}",
            )
            for name in self.queues
        }
        self.nodes: dict[str, str] = {}

    def start(self, timeout: float = 180.0) -> "BenchmarkWorkers":
        for process in self.processes.values():
            process.start()
        deadline = time.monotonic() + timeout
        while len(self.nodes) < len(self.processes):
            for name, process in self.processes.items():
                if process.process is not None and process.process.poll() is not None:
                    code = process.process.returncode
                    raise BenchmarkError(f"{name} exited with code {code}:\n{process.output()[-3000:]}")
            for reply in self.app.control.ping(timeout=1.0):
                for node in reply:
                    for name in self.processes:
                        if node.startswith(f"bench-{name}-{self.token}@"):
                            self.nodes[name] = node
            if len(self.nodes) < len(self.processes) and time.monotonic() > deadline:
                missing = sorted(set(self.processes) - set(self.nodes))
                raise BenchmarkError(f"{', '.join(missing)} did not answer a ping within {timeout:.0f} s.")
        return self

    def describe(self) -> dict[str, dict]:
        """Per queue: the process, pool, concurrency and prefetch count that the running worker reports."""
        stats = self.app.control.inspect(destination=list(self.nodes.values()), timeout=5.0).stats() or {}
        described = {}
        for name, node in self.nodes.items():
            worker = stats.get(node, {})
            pool = worker.get("pool", {})
            for queue in sorted(self.queues[name]):
                described[queue] = {
                    "process": name,
                    "pool": short_pool_name(str(pool.get("implementation", "?"))),
                    "concurrency": pool.get("max-concurrency"),
                    "prefetch_count": worker.get("prefetch_count"),
                }
        return described

    def output(self, name: str) -> str:
        return self.processes[name].output()

    def stop(self) -> None:
        """Warm shutdown for all at once, then wait for each (killed if it hangs)."""
        for process in self.processes.values():
            process.signal(signal.SIGTERM)
        for process in self.processes.values():
            process.stop(timeout=60.0)
            process.log_path.unlink(missing_ok=True)

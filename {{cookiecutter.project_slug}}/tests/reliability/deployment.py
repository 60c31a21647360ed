"""The Procfile's workers and beats, run as real processes against the scenario's broker and the test database."""

import contextlib
from pathlib import Path

from tests.support.waiting import wait_until
from tools.procfile import ProcfileProcess

# Production's timeouts shortened, so that waiting for a redelivery takes seconds, in the relations the
# system checks require: visibility timeout > hard limit + longest countdown, hard limit > soft limit.
TIMEOUTS = {
    "CELERY_VISIBILITY_TIMEOUT": 8,
    "CELERY_TASK_TIME_LIMIT": 6,
    "CELERY_TASK_SOFT_TIME_LIMIT": 5,
    "TASK_MAX_COUNTDOWN": 1,
}
VISIBILITY_TIMEOUT = TIMEOUTS["CELERY_VISIBILITY_TIMEOUT"]
TASKS_MODULE = "tests.reliability.tasks"
# Generous: other test runs may share the machine's cores.
STARTUP_TIMEOUT = 90.0


def parent_pid(pid: int | str) -> int:
    """The parent of a running process, from /proc (the field after the command name, which may hold spaces)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


class Node(ProcfileProcess):
    """A Procfile process with the node name it was started under (one per worker, one per beat)."""

    def __init__(self, name: str, node: str, env: dict[str, str], extra_args: str = ""):
        super().__init__(name, env=env, extra_args=extra_args)
        self.node = node

    def pids(self) -> set[int]:
        """This process and its children (a worker's pool) now: read it before a kill, while they exist."""
        main = self.pid
        pids = {main}
        for entry in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):  # a process that ended while the table was read
                if parent_pid(entry.name) == main:
                    pids.add(int(entry.name))
        return pids


class Deployment:
    """Start Procfile processes with the scenario's environment; kill whatever is left at the end."""

    def __init__(self, redis_url: str, database_url: str, directory: Path, extra_env: dict[str, str] | None = None):
        self.redis_url = redis_url
        self.extra_env = extra_env or {}
        self.database_url = database_url
        self.directory = directory
        self.processes: list[Node] = []

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": self.database_url,
            # The worker's --include option: the test tasks load without changing the Procfile command.
            "CELERY_WORKER_INCLUDE": TASKS_MODULE,
            **{name: str(value) for name, value in TIMEOUTS.items()},
            **self.extra_env,
            **extra,
        }

    def start(self, name: str, node: str, env: dict[str, str], extra_args: str = "") -> Node:
        process = Node(name, node, env, extra_args).start()
        self.processes.append(process)
        return process

    def start_worker(
        self, node: str = "worker1", *, concurrency: int = 2, ready: bool = True, limits: dict[str, int] | None = None
    ) -> Node:
        """The Procfile's `worker` (the default queue, prefork) under its own node name.

        ``limits`` replaces some of TIMEOUTS for this worker (a scenario whose tasks run longer).
        """
        env = self.env(CELERY_DEFAULT_CONCURRENCY=str(concurrency), **{k: str(v) for k, v in (limits or {}).items()})
        worker = self.start("worker", node, env, extra_args=f"-n {node}@%h")
        if ready:
            self.wait_ready(worker)
        return worker

    def wait_ready(self, worker: Node) -> None:
        worker.wait_for_output(f"{worker.node}@", timeout=STARTUP_TIMEOUT)
        worker.wait_for_output(" ready.", timeout=STARTUP_TIMEOUT)

    def start_beat(self, node: str, **extra: str) -> Node:
        heartbeat = self.directory / f"{node}-heartbeat"
        return self.start("beat", node, self.env(BEAT_HEARTBEAT_FILE=str(heartbeat), **extra))

    def start_workers(self, *nodes: str, concurrency: int = 2, limits: dict[str, int] | None = None) -> list[Node]:
        """Several workers on the default queue, as a deployment with replicas runs them; ready when returned."""
        workers = [self.start_worker(node, concurrency=concurrency, ready=False, limits=limits) for node in nodes]
        for worker in workers:
            self.wait_ready(worker)
        return workers

    def worker_of(self, pid: int) -> Node:
        """The worker whose pool child (or main process) is ``pid``, which must still be running."""
        parent = parent_pid(pid)
        for process in self.processes:
            if process.process is not None and process.process.pid in (pid, parent):
                return process
        raise AssertionError(f"process {pid} (parent {parent}) belongs to none of the started workers")

    def kill_all(self) -> None:
        for process in self.processes:
            process.kill_group()

    def remove_logs(self) -> None:
        for process in self.processes:
            process.log_path.unlink(missing_ok=True)

    def logs(self) -> str:
        return "\n".join(
            f"----- {process.name} {process.node} (pid {process.process.pid}) -----\n{process.output()[-6000:]}"
            for process in self.processes
            if process.process is not None
        )


def assert_no_crash_loop(worker: Node, broker) -> None:
    """After bad input: the same worker process ran everything, and nothing bad is left to come back."""
    assert worker.process is not None
    assert worker.process.poll() is None, f"the worker exited with {worker.process.returncode}"
    assert worker.output().count(" ready.") == 1, "the worker started more than once"
    assert broker.queued("default") == 0, f"{broker.queued('default')} messages left in the default queue"
    wait_until(lambda: broker.unacked() == 0, timeout=30, what="every message to be acked or rejected")

"""A Redis primary, its replica and a sentinel watching them, on free loopback ports.

The sentinel is `redis-server --sentinel` (what Debian's redis-sentinel runs), so redis-server is all it needs.
"""

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from redis.sentinel import Sentinel

from tools.redis_server import free_port

MASTER_NAME = "broker"


class SentinelTopology:
    """Start with ``start()``, stop with ``stop()``; ``failover()`` makes the replica the primary."""

    def __init__(self):
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
        self.directory = Path(tempfile.mkdtemp(prefix="redis-sentinel-test-"))
        self.ports = {"a": free_port(), "b": free_port(), "sentinel": free_port()}
        self.processes: dict[str, subprocess.Popen] = {}

    @property
    def broker_url(self) -> str:
        return f"sentinel://127.0.0.1:{self.ports['sentinel']}/0"

    def client(self, name: str) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.ports[name], socket_timeout=5)

    def _server(self, name: str, *extra: str) -> None:
        directory = self.directory / name
        directory.mkdir()
        command = [
            "redis-server", "--bind", "127.0.0.1", "--port", str(self.ports[name]), "--dir", str(directory),
            "--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction", "--save", "",
            *extra,
        ]  # fmt: skip
        self.processes[name] = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def start(self, timeout: float = 60.0) -> "SentinelTopology":
        self._server("a")
        self._server("b", "--replicaof", "127.0.0.1", str(self.ports["a"]))
        config = self.directory / "sentinel.conf"
        config.write_text(
            f"port {self.ports['sentinel']}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.ports['a']} 1\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
            f"sentinel failover-timeout {MASTER_NAME} 10000\n"
        )
        self.processes["sentinel"] = subprocess.Popen(
            ["redis-server", str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        self._wait(lambda: self.client("b").info("replication").get("master_link_status") == "up", timeout, "sync")
        self._wait(lambda: self.client("sentinel").sentinel_slaves(MASTER_NAME), timeout, "the sentinel's view")
        return self

    def _wait(self, condition, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with code {process.returncode}")
            try:
                result = condition()
            except (redis.ConnectionError, redis.ResponseError, redis.TimeoutError):
                result = None
            if result:
                return result
            time.sleep(0.1)
        raise RuntimeError(f"timed out waiting for {what} ({timeout} s)")

    def primary(self) -> str:
        """The primary as clients find it (redis-py's Sentinel): none while a failover is under way."""
        sentinel = Sentinel([("127.0.0.1", self.ports["sentinel"])], socket_timeout=5)
        _host, port = sentinel.discover_master(MASTER_NAME)
        return next(name for name, number in self.ports.items() if number == int(port))

    def failover(self, how: str, timeout: float = 60.0) -> str:
        """Make the replica the primary; return its name.

        ``"failover"``: SENTINEL FAILOVER, a planned switch (the old primary becomes the new one's replica).
        ``"kill"``: SIGKILL the primary, as a crash of its host; the sentinel promotes the replica once the
        primary has not answered for ``down-after-milliseconds`` (1 s here).
        """
        before = self.primary()
        if how == "failover":
            self.client("sentinel").sentinel_failover(MASTER_NAME)
        else:
            killed = self.processes.pop(before)
            killed.kill()
            killed.wait()
        after = self._wait(lambda: (name := self.primary()) != before and name, timeout, "the failover")
        # The new primary accepts writes: the promotion is complete.
        self._wait(lambda: self.client(after).info("replication")["role"] == "master", timeout, "the promotion")
        return after

    def settled(self, timeout: float = 60.0) -> None:
        """Wait until every server still running agrees with the sentinel on who the primary is."""
        primary = self.primary()
        for name in ("a", "b"):
            if name != primary and name in self.processes:
                self._wait(lambda name=name: self.client(name).info("replication")["role"] == "slave", timeout, name)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

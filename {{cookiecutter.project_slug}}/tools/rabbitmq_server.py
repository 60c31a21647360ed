"""A RabbitMQ node of the project's own: throwaway for tests, or kept in a directory for ``make rabbitmq``.

The node listens on loopback only, with its own Erlang port mapper (epmd) on a free port, so it never meets
another node on the machine, and everything it writes (data, logs, the Erlang cookie) stays in its directory.
``python -m tools.rabbitmq_server start --dir .rabbitmq`` starts one that outlives the command; ``stop`` ends it.
"""

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kombu import Connection

INSTALL_HINT = (
    "The tests and `make dev` need a real RabbitMQ (no fakes): install rabbitmq-server "
    "(Debian/Ubuntu: `sudo apt-get install rabbitmq-server`, macOS: `brew install rabbitmq`) "
    "or point CELERY_BROKER_URL at a RabbitMQ whose virtual hosts you may create."
)
# RabbitMQ closes the channel of a consumer that holds a message unacked past this (its default: 30 min).
CONSUMER_TIMEOUT_MS = 30 * 60 * 1000
START_TIMEOUT = 90  # seconds: a cold Erlang VM on a loaded machine takes 5-20 s
# Seconds a server already on the port has to finish the AMQP handshake. A busy node on a loaded machine took more
# than 1 s, so `make rabbitmq` took it for no server and started a second node on the taken port.
ANSWER_TIMEOUT = 10


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _script(name: str) -> str:
    # Debian's /usr/sbin wrappers switch to the rabbitmq user when run as root; the scripts under /usr/lib do not.
    for candidate in (f"/usr/lib/rabbitmq/bin/{name}", shutil.which(name)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(INSTALL_HINT)


class RabbitMQServer:
    """One node in ``directory`` (a temp dir unless given), AMQP on 127.0.0.1:``port``.

    Ports are chosen once and written to the directory, so a node restarted there keeps its address and data.
    """

    def __init__(self, directory: Path | None = None, port: int | None = None, consumer_timeout_ms: int | None = None):
        self.server = _script("rabbitmq-server")
        self.ctl = _script("rabbitmqctl")
        self.temporary = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="rabbitmq-test-")).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        ports = self.directory / "ports"
        if ports.exists():
            self.port, self.dist_port, self.epmd_port = (int(p) for p in ports.read_text().split())
        else:
            self.port, self.dist_port, self.epmd_port = port or free_port(), free_port(), free_port()
            ports.write_text(f"{self.port} {self.dist_port} {self.epmd_port}\n")
        self.consumer_timeout_ms = consumer_timeout_ms or CONSUMER_TIMEOUT_MS
        self.process: subprocess.Popen | None = None
        self._child: subprocess.Popen | None = None
        self.nodename = f"rabbit-{self.port}@localhost"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"  # pragma: allowlist secret (loopback-only guest)

    @property
    def pid_file(self) -> Path:
        return self.directory / "rabbitmq.pid"

    def environment(self) -> dict[str, str]:
        config = self.directory / "rabbitmq.conf"
        config.write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            f"consumer_timeout = {self.consumer_timeout_ms}\n"
            # A test machine's disk: the default 50 MB free limit blocks publishers on a nearly full /tmp.
            "disk_free_limit.absolute = 1MB\n"
            # Queue counts (rabbitmqctl list_queues) are statistics, emitted every 5 s by default: 0.1 s here.
            "collect_statistics_interval = 100\n"
            "log.file.level = warning\n"
            "log.console = false\n"
        )
        # A quorum queue's counts (ready, unacked) are refreshed on its tick, every 5 s by default: list_queues could
        # show a message just delivered as neither ready nor unacked for that long (a test saw a queue "settled" with a
        # task in flight). Every 0.1 s here, as the statistics above; only advanced.config can set it.
        advanced = self.directory / "advanced.config"
        advanced.write_text("[{rabbit, [{quorum_tick_interval, 100}]}].\n")
        plugins = self.directory / "enabled_plugins"
        plugins.write_text("[].\n")
        return {
            **os.environ,
            "HOME": str(self.directory),  # the Erlang cookie rabbitmqctl shares with the node
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(advanced),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_MNESIA_BASE": str(self.directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.directory / "log"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
        }

    def start(self, detach: bool = False) -> "RabbitMQServer":
        """Start the node and wait until it accepts AMQP; ``detach`` lets it outlive this process.

        In a process group of its own (the script's and the Erlang VM's), so that stop() can end both by that id.
        Refused when something already listens on the port: the new node could not bind it, and waiting for AMQP
        there would find the other server and report this node started.
        """
        if listening(self.port):
            raise RuntimeError(
                f"Port {self.port} on 127.0.0.1 is already taken: a RabbitMQ node started here could not listen on "
                "it. Stop what listens there, or choose another port."
            )
        with (self.directory / "server.out").open("ab") as log:  # the node keeps its own copy of the descriptor
            process = subprocess.Popen(
                [self.server],
                env=self.environment(),
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (self.directory / "server.pid").write_text(f"{process.pid}\n")
        # Detached, nothing here waits for it: stop() finds the node by its pid file.
        self.process = None if detach else process
        self._child = process  # reaped when it exits, so that no zombie of it counts as running
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited with {self.process.returncode}:\n{self.output()}")
            try:
                with Connection(self.url, connect_timeout=1) as connection:
                    connection.connect()
                    return
            except Exception as exc:  # not listening yet, or booting (connection refused or closed)
                last_error = exc
            time.sleep(0.2)
        raise RuntimeError(
            f"RabbitMQ did not accept AMQP on port {self.port} within {timeout} s "
            f"(last error: {last_error!r}):\n{self.output()}"
        )

    def output(self) -> str:
        path = self.directory / "server.out"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def ctl_run(self, *args: str, timeout: float = 60) -> str:
        """``rabbitmqctl`` against this node, e.g. ``ctl_run("add_vhost", "tests")``."""
        result = subprocess.run(
            [self.ctl, "-n", self.nodename, *args],
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {result.stdout}{result.stderr}")
        return result.stdout

    def queue_counts(self, vhost: str = "/") -> dict[str, tuple[int, int]]:
        """Each queue of ``vhost``: (ready, unacknowledged). Statistics the node emits every 0.1 s (the config and the
        quorum tick above), so a moment behind the queues themselves."""
        listed = self.ctl_run(
            "list_queues", "-p", vhost, "--quiet", "--no-table-headers", "name", "messages_ready",
            "messages_unacknowledged",
        )  # fmt: skip
        counts = {}
        for line in listed.splitlines():
            name, ready, unacked = line.split()
            counts[name] = (int(ready), int(unacked))
        return counts

    def add_vhost(self, name: str) -> str:
        """A virtual host the guest user may use: an empty broker for a test. Returns its URL."""
        self.ctl_run("add_vhost", name)
        self.ctl_run("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{name}"  # pragma: allowlist secret

    def delete_vhost(self, name: str) -> None:
        self.ctl_run("delete_vhost", name)

    def server_pid(self) -> int | None:
        path = self.directory / "server.pid"
        with contextlib.suppress(FileNotFoundError, ValueError):
            return int(path.read_text())
        return None

    def running(self) -> bool:
        """Some process of the node's group (the script or its Erlang VM) is alive."""
        pid = self.server_pid()
        if pid is None:
            return False
        if self._child is not None:
            self._child.poll()  # reap the script if it exited
        return group_alive(pid)

    def restart(self) -> "RabbitMQServer":
        """Stop the node and start it again in its directory: same port, same queues and messages."""
        self.stop(keep=True)
        return self.start()

    def stop(self, remove_data: bool = False, timeout: float = 60, keep: bool = False) -> None:
        """Stop the node (rabbitmqctl stop: queues are flushed to disk), then its epmd; by their pids.

        If rabbitmqctl fails or the node outlives ``timeout``, its process group (the script and the Erlang VM,
        started by start()) is killed.
        """
        pid = self.server_pid()
        if pid is not None and self.running():
            try:
                self.ctl_run("stop", timeout=timeout)
                self._wait_gone(timeout)
            except (RuntimeError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                self._wait_gone(timeout)
        self._stop_epmd()
        (self.directory / "server.pid").unlink(missing_ok=True)
        if remove_data or (self.temporary and not keep):
            shutil.rmtree(self.directory, ignore_errors=True)

    def _wait_gone(self, timeout: float) -> None:
        """Until no process of the node's group is left (the script may exit before its Erlang VM does)."""
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"rabbitmq-server (process group {self.server_pid()})", timeout)
            time.sleep(0.1)

    def _stop_epmd(self) -> None:
        # This node's own epmd (ERL_EPMD_PORT is ours alone): `epmd -kill` asks it to exit.
        epmd = shutil.which("epmd") or next(Path("/usr/lib/erlang/erts-").parent.glob("erts-*/bin/epmd"), None)
        if epmd:
            subprocess.run(
                [str(epmd), "-kill"],
                env={**os.environ, "ERL_EPMD_PORT": str(self.epmd_port)},
                capture_output=True,
                timeout=10,
                check=False,
            )


def listening(port: int) -> bool:
    """Something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def answers(url: str, timeout: float = ANSWER_TIMEOUT) -> bool:
    """An AMQP server accepts ``url``'s user within ``timeout`` seconds (connection and handshake)."""
    try:
        with Connection(url, connect_timeout=timeout) as connection:
            connection.ensure_connection(max_retries=0)  # one attempt: connect() tries twice, 2 s apart
            return True
    except Exception:  # refused, closed, or no such user: nothing usable answers there
        return False


def group_alive(pgid: int) -> bool:
    """A process of the group is alive: not a zombie (an exited child its parent has not reaped yet)."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: any member, zombies included
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc.glob("[0-9]*"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            state, _parent, group = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
            if int(group) == pgid and state != "Z":
                return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop"])
    parser.add_argument("--dir", type=Path, default=Path(".rabbitmq"), help="where the node keeps its data")
    parser.add_argument("--port", type=int, default=5672, help="AMQP port on 127.0.0.1 (first start only)")
    args = parser.parse_args(argv)
    node = RabbitMQServer(args.dir, port=args.port)
    if args.command == "start":
        if node.running():
            print(f"RabbitMQ already runs on port {node.port} (stop it with: make stop-rabbitmq)")
            return 0
        if listening(node.port):
            if answers(node.url):
                # As `make redis` does: a server already there (a system rabbitmq-server service) is used, not fought.
                print(f"A RabbitMQ already answers on port {node.port}: using it (not started here)")
                return 0
            print(
                f"Port {node.port} on 127.0.0.1 is taken by a server that did not accept AMQP as guest within "
                f"{ANSWER_TIMEOUT} s: stop it, or start this node on another port (RABBITMQ_PORT=5673 make rabbitmq, "
                "before its first start in this --dir) and put that port in .env's CELERY_BROKER_URL.",
                file=sys.stderr,
            )
            return 1
        node.start(detach=True)
        print(f"Started RabbitMQ on port {node.port}, data in {node.directory} (stop it with: make stop-rabbitmq)")
    else:
        if not node.running():
            print("No RabbitMQ started by `make rabbitmq` runs")
            return 0
        node.stop()
        print("Stopped RabbitMQ")
    return 0


if __name__ == "__main__":
    sys.exit(main())

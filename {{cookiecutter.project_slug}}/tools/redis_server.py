"""A throwaway redis-server for tests: a free loopback port, a temp dir, stopped afterwards."""

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

INSTALL_HINT = (
    "The tests need a real Redis (no fakes): install redis-server "
    "(Debian/Ubuntu: `sudo apt-get install redis-server`, macOS: `brew install redis`) "
    "or point REDIS_URL at a Redis you can flush."
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# What managed Redis services hand out: every command but the @dangerous ones (FLUSHDB, INFO, CONFIG, KEYS...).
MANAGED_ACL_RULES = ("on", "~*", "&*", "+@all", "-@dangerous")


@dataclasses.dataclass(frozen=True)
class AclUser:
    """The only user such a server lets in: the default user is switched off."""

    name: str = "app"
    password: str = "app-password"  # noqa: S105 (a throwaway server on loopback)
    rules: tuple[str, ...] = MANAGED_ACL_RULES


@dataclasses.dataclass(frozen=True)
class Tls:
    """Serve TLS only (no plain port) with this certificate; clients verify it against ``ca_file``."""

    cert_file: Path
    key_file: Path
    ca_file: Path


class RedisServer:
    """Run redis-server with the persistence settings the compose files use (AOF, noeviction).

    ``acl_user`` makes it a managed-Redis shape (one ACL user, default user off); ``tls`` serves rediss:// only;
    ``config`` overrides those settings (e.g. ``("--maxmemory-policy", "allkeys-lru")``): the last value wins.
    """

    def __init__(self, acl_user: AclUser | None = None, tls: Tls | None = None, config: tuple[str, ...] = ()):
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError(INSTALL_HINT)
        self.executable = executable
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="redis-test-"))
        self.process: subprocess.Popen | None = None
        self.acl_user = acl_user
        self.tls = tls
        self.config = config

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        credentials = f"{self.acl_user.name}:{self.acl_user.password}@" if self.acl_user else ""
        return f"{scheme}://{credentials}127.0.0.1:{self.port}/0"

    def client_options(self) -> dict:
        """What a redis-py client of this server needs besides the URL."""
        return {"ssl_ca_certs": str(self.tls.ca_file), "ssl_cert_reqs": "required"} if self.tls else {}

    def shape_arguments(self) -> list[str]:
        arguments = []
        if self.acl_user:
            user = self.acl_user
            arguments += ["--user", user.name, *user.rules, f">{user.password}", "--user", "default", "off"]
        if self.tls:
            arguments += [
                "--port", "0",
                "--tls-port", str(self.port),
                "--tls-cert-file", str(self.tls.cert_file),
                "--tls-key-file", str(self.tls.key_file),
                "--tls-ca-cert-file", str(self.tls.ca_file),
                # Clients verify the server; the server does not ask clients for certificates.
                "--tls-auth-clients", "no",
            ]  # fmt: skip
        else:
            arguments += ["--port", str(self.port)]
        return arguments

    def start(self, timeout: float = 10.0) -> "RedisServer":
        self.process = subprocess.Popen(
            [
                self.executable,
                "--bind", "127.0.0.1",
                *self.shape_arguments(),
                "--dir", str(self.directory),
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--maxmemory-policy", "noeviction",
                "--save", "",
                *self.config,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url, **self.client_options())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with code {self.process.returncode} on port {self.port}")
            try:
                if client.ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout} s")

    def stop(self, remove_data: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if remove_data:
            shutil.rmtree(self.directory, ignore_errors=True)

    @contextlib.contextmanager
    def stalled(self) -> Iterator[None]:
        """Redis alive but answering nothing until the block ends (SIGSTOP, then SIGCONT): what a snapshot's fork,
        a failover under way or a saturated network look like to a client. Connections are still accepted (by
        the kernel), and what clients send meanwhile is read and applied once it resumes."""
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"redis-server on port {self.port} is not running")
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.process.pid, signal.SIGCONT)

    def restart(self) -> None:
        """Stop and start on the same port and data directory: what AOF persistence must survive."""
        self.stop()
        self.start()

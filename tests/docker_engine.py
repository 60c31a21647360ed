"""A Docker engine for the container tests, and stand-in base images where no registry can be reached.

Order of preference: an engine that already answers (DOCKER_HOST, or the default socket); else, as root with
`dockerd` installed, a private engine started here (its own data root under the test cache, exec root, socket,
`--ip-forward=false`, no default bridge), stopped afterwards with the nft ruleset and the sysctls it touched put
back as they were; else the tests fail saying how to get one.

Images the compose files name (`python:3.13-slim`, `postgres:15`, `redis:7`, `axllent/mailpit:...`) are pulled
when a registry answers; where none does, stand-ins are built from a Debian minbase made with debootstrap
(tarball cached) and tagged with the same names: trixie for Python 3.13 (the suite the real `python:3.13-slim` is
built on), bookworm for PostgreSQL 15 (trixie has only 17) and Redis 7. Which were used is printed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bakery import CACHE_DIR

STANDINS_DIR = Path(__file__).resolve().parent / "standins"
DOCKER_CACHE = CACHE_DIR / "docker"
DEBIAN_MIRROR = os.environ.get("STANDIN_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# Sysctls dockerd may write; read before it starts, written back after it stops.
SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/forwarding",
    "net/ipv6/conf/all/forwarding",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/ipv4/conf/all/route_localnet",
)
HOW_TO_GET_ONE = (
    "The container tests need a Docker engine: start one and export DOCKER_HOST, or run the tests as root "
    "with Debian's `docker.io`, `docker-compose` and `debootstrap` installed (`apt-get install docker.io "
    "docker-compose debootstrap`; .ci/run does this), so that they start a private engine themselves."
)


@dataclass
class Engine:
    host: str
    started_here: bool
    standins: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["DOCKER_HOST"] = self.host
        # compose v1 builds nothing here (the tests build with `docker build`), but keep it off BuildKit quirks.
        env["COMPOSE_DOCKER_CLI_BUILD"] = "0"
        return env

    def docker(self, *argv: str, timeout: float = 300, check: bool = True, **kw) -> subprocess.CompletedProcess:
        result = subprocess.run(
            ["docker", *argv], env=self.env, capture_output=True, text=True, timeout=timeout, check=False, **kw
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"`docker {' '.join(argv)}` exited {result.returncode}:\n"
                f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}",
                pytrace=False,
            )
        return result

    def answers(self) -> bool:
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            return self.docker("version", "--format", "{{.Server.Version}}", timeout=20, check=False).returncode == 0
        return False


def _read_sysctls() -> dict[str, str]:
    values = {}
    for name in SYSCTLS:
        path = Path("/proc/sys") / name
        with contextlib.suppress(OSError):
            values[name] = path.read_text().strip()
    return values


def _restore_sysctls(values: dict[str, str]) -> None:
    for name, value in values.items():
        path = Path("/proc/sys") / name
        with contextlib.suppress(OSError):
            if path.read_text().strip() != value:
                path.write_text(value + "\n")


def _nft_ruleset() -> str | None:
    if not shutil.which("nft"):
        return None
    result = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=False, timeout=30)
    return result.stdout if result.returncode == 0 else None


def _restore_nft(saved: str | None) -> None:
    if saved is None:
        return
    if _nft_ruleset() == saved:
        return
    with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as handle:
        handle.write("flush ruleset\n" + saved)
    subprocess.run(["nft", "-f", handle.name], capture_output=True, check=False, timeout=30)
    os.unlink(handle.name)


def _unmount_under(directory: Path) -> None:
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mountpoint in sorted((m for m in mounts if m.startswith(f"{directory}/")), reverse=True):
        subprocess.run(["umount", "--lazy", mountpoint], capture_output=True, check=False, timeout=30)


def _existing_engine() -> Engine | None:
    candidates = [os.environ["DOCKER_HOST"]] if os.environ.get("DOCKER_HOST") else []
    if Path("/var/run/docker.sock").exists():
        candidates.append("unix:///var/run/docker.sock")
    for host in candidates:
        engine = Engine(host=host, started_here=False)
        if shutil.which("docker") and engine.answers():
            return engine
    return None


@contextlib.contextmanager
def docker_engine() -> Iterator[Engine]:
    """The session's engine: an existing one, else a private one started (and cleaned up) here."""
    if not shutil.which("docker") or not shutil.which("docker-compose"):
        pytest.fail(HOW_TO_GET_ONE + " (no `docker` or `docker-compose` on PATH)", pytrace=False)
    existing = _existing_engine()
    if existing is not None:
        yield existing
        return
    if os.geteuid() != 0 or not shutil.which("dockerd"):
        pytest.fail(HOW_TO_GET_ONE, pytrace=False)
    DOCKER_CACHE.mkdir(parents=True, exist_ok=True)
    # One private engine on this cache at a time (another checkout's run waits here).
    with (DOCKER_CACHE / "engine.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        run_dir = Path(tempfile.mkdtemp(prefix="dk-", dir="/tmp"))  # short: unix socket paths are limited
        socket = run_dir / "docker.sock"
        sysctls, ruleset = _read_sysctls(), _nft_ruleset()
        log = (DOCKER_CACHE / "dockerd.log").open("w")
        process = subprocess.Popen(
            ["dockerd", "--data-root", str(DOCKER_CACHE / "data-root"), "--exec-root", str(run_dir / "exec"),
             "--pidfile", str(run_dir / "dockerd.pid"), "-H", f"unix://{socket}", "--ip-forward=false",
             "--bridge=none", "--default-address-pool", "base=172.29.0.0/16,size=24",
             "--containerd-namespace", "template-tests", "--containerd-plugins-namespace", "template-tests-plugins"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        engine = Engine(host=f"unix://{socket}", started_here=True)
        try:
            deadline = time.monotonic() + 60
            while not engine.answers():
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(
                        f"dockerd did not answer within 60 s (exit {process.poll()}); its log:\n"
                        + (DOCKER_CACHE / "dockerd.log").read_text()[-4000:],
                        pytrace=False,
                    )
                time.sleep(0.5)
            yield engine
        finally:
            with contextlib.suppress(Exception):
                ids = engine.docker("ps", "-aq", check=False, timeout=60).stdout.split()
                if ids:
                    engine.docker("rm", "-f", "-v", *ids, check=False, timeout=120)
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
            log.close()
            _restore_nft(ruleset)
            _restore_sysctls(sysctls)
            _unmount_under(run_dir)  # dockerd leaves its default network namespace mounted in the exec root
            shutil.rmtree(run_dir, ignore_errors=True)


# --- base images: real ones when a registry answers, else stand-ins ---------------------------------------------

# Each name the compose files and the Dockerfile use -> the stand-in build directory under tests/standins/.
STANDIN_IMAGES = {
    "python:3.13-slim": "python",
    "redis:7": "redis",
    "postgres:15": "postgres",
    "rabbitmq:3.13-management": "rabbitmq",
}
MAILPIT_STANDIN = "mailpit"
# The Debian suite each stand-in's FROM line names (template-tests/<suite>-minbase); the mailpit one is built on
# the python stand-in.
STANDIN_SUITES = {
    "python": "trixie",
    "redis": "bookworm",
    "postgres": "bookworm",
    "rabbitmq": "bookworm",
    MAILPIT_STANDIN: "trixie",
}
HOST_CA_BUNDLE = Path(os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")


def _minbase_tarball(suite: str) -> Path:
    tarball = DOCKER_CACHE / f"{suite}-minbase.tar"
    if tarball.exists():
        return tarball
    if not shutil.which("debootstrap"):
        pytest.fail("No registry answers and debootstrap is missing: `apt-get install debootstrap`.", pytrace=False)
    with (DOCKER_CACHE / "debootstrap.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.exists():
            return tarball
        rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir="/tmp"))
        try:
            subprocess.run(
                ["debootstrap", "--variant=minbase", "--include=ca-certificates", suite, str(rootfs),
                 DEBIAN_MIRROR],
                check=True, capture_output=True, timeout=900,
            )  # fmt: skip
            partial = tarball.with_suffix(".partial")
            # Without apt's lists and downloaded packages: the stand-ins' own RUN steps fetch fresh lists.
            subprocess.run(
                ["tar", "-C", str(rootfs), "--exclude=./var/lib/apt/lists/*", "--exclude=./var/cache/apt/*",
                 "-cf", str(partial), "."],
                check=True, timeout=300,
            )  # fmt: skip
            partial.rename(tarball)
        finally:
            shutil.rmtree(rootfs, ignore_errors=True)
    return tarball


def _standins_digest(tarball: Path, directory: str | None = None) -> str:
    """Changes with a stand-in's files (all of them without `directory`) and with the base tarball."""
    digest = hashlib.sha256(f"{tarball.stat().st_size}:{tarball.stat().st_mtime_ns}".encode())
    root = STANDINS_DIR / directory if directory else STANDINS_DIR
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(STANDINS_DIR).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def _has_image(engine: Engine, name: str) -> bool:
    return engine.docker("image", "inspect", name, check=False, timeout=30).returncode == 0


def _label(engine: Engine, name: str, label: str) -> str:
    fmt = f'{{{{ index .Config.Labels "{label}" }}}}'
    result = engine.docker("image", "inspect", "--format", fmt, name, check=False, timeout=30)
    return result.stdout.strip() if result.returncode == 0 else ""


def _pull(engine: Engine, name: str) -> bool:
    try:
        return engine.docker("pull", "--quiet", name, check=False, timeout=120).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def ensure_base_images(engine: Engine, mailpit_image: str) -> list[str]:
    """Make every base image present; returns the stand-ins as "name (Debian suite)" (empty where all were pulled)."""
    wanted = {**STANDIN_IMAGES, mailpit_image: MAILPIT_STANDIN}
    standins = []
    for name, directory in wanted.items():
        suite = STANDIN_SUITES[directory]
        tarball = _minbase_tarball(suite)
        base_digest = _standins_digest(tarball, "-")
        # The mailpit stand-in is built on the python one: it changes with it.
        digest = _standins_digest(tarball, directory) + (
            "-" + _standins_digest(tarball, "python") if directory == MAILPIT_STANDIN else ""
        )
        if _has_image(engine, name) and _label(engine, name, "template-tests.standin") in ("", digest):
            if _label(engine, name, "template-tests.standin"):
                standins.append(f"{name} ({suite})")
            continue
        if not _has_image(engine, name) and _pull(engine, name):
            continue
        if _label(engine, f"template-tests/{suite}-minbase", "template-tests.base") != base_digest:
            engine.docker(
                "import", "--change", f"LABEL template-tests.base={base_digest}", str(tarball),
                f"template-tests/{suite}-minbase", timeout=300,
            )  # fmt: skip
        # The host's CA bundle goes into the stand-ins: the build steps reach the package registry through it.
        with tempfile.TemporaryDirectory() as context:
            shutil.copytree(STANDINS_DIR / directory, context, dirs_exist_ok=True)
            shutil.copy(HOST_CA_BUNDLE, Path(context) / "host-ca-certificates.crt")
            engine.docker(
                "build", "--network", "host", "--label", f"template-tests.standin={digest}", "-t", name, context,
                timeout=900,
            )  # fmt: skip
        standins.append(f"{name} ({suite})")
    return standins

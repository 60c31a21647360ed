"""Fixtures for the template's own tests: bakes, one shared virtualenv, real PostgreSQL."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import ci_timeline
import pytest
from bakery import (
    ALL_DEPENDENCIES_CONTEXT,
    CACHE_DIR,
    PROJECT_PYTHON,
    TEMPLATE_DIR,
    bake_project,
    free_port,
    python_interpreter,
    uv,
)


def pytest_configure(config: pytest.Config) -> None:
    # pytest-cookies bakes the template at --template; make that this repo wherever pytest runs from.
    config.option.template = str(TEMPLATE_DIR)
    ci_timeline.register(config)


# The longest tests (each runs a generated project's whole suite: 2-16 minutes) start first, longest first. xdist's
# loadgroup hands a worker its next test whenever it has at most 2 pending, so a test queued behind a long one waits
# for it: in fresh-clone runs 77 and 78 the declared-dependencies suite waited behind the RabbitMQ bake's and ended the
# run 97-133 s (run 77) and 165-210 s (run 78) after the other workers (the summary of tests/ci_timeline.py shows
# it). This order is run 77's durations, longest first: in run 80 the workers ended within 82 s of each other.
LONGEST_FIRST = (
    "test_reliability_suite.py::test_a_rabbitmq_projects_reliability_suite_passes",
    "test_generated_project.py::test_generated_test_suite_passes[rabbitmq]",
    "test_reliability_suite.py::test_generated_reliability_suite_passes",
    "test_generated_suite_environments.py::test_default_project_suite_passes",
    "test_generated_project.py::test_generated_test_suite_passes[no-results+no-flower+no-ci]",
    "test_generated_project.py::test_generated_test_suite_passes[redis-results+sentry+kubernetes+gitlab]",
    "test_generated_project.py::test_generated_test_suite_passes[no-examples+sentry+kubernetes]",
    "test_generated_project.py::test_generated_test_suite_passes[all-off]",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((index for index, name in enumerate(LONGEST_FIRST) if name in item.nodeid), len(LONGEST_FIRST))

    items.sort(key=rank)


def baked_path(result) -> Path:
    if result.exit_code != 0:
        pytest.fail(f"bake failed: {result.exception!r}", pytrace=False)
    return Path(result.project_path)


@pytest.fixture
def bake(cookies):
    """bake(**context) -> generated project directory (pytest-cookies, this test's tmp dir)."""

    def _bake(**context: str) -> Path:
        return baked_path(cookies.bake(extra_context=context))

    return _bake


@pytest.fixture(scope="session")
def bake_once(cookies_session):
    """bake_once(name, **context): bake each named combination once per session and share it."""
    projects: dict[str, Path] = {}

    def _bake(name: str, **context: str) -> Path:
        if name not in projects:
            projects[name] = baked_path(cookies_session.bake(extra_context=context))
        return projects[name]

    return _bake


@pytest.fixture(scope="session")
def template_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One virtualenv with the union of every bake's dependencies, reused while they do not change."""
    project = bake_project(tmp_path_factory.mktemp("deps"), **ALL_DEPENDENCIES_CONTEXT)
    pyproject = (project / "pyproject.toml").read_bytes()
    python = python_interpreter(PROJECT_PYTHON)
    digest = hashlib.sha256(pyproject + python.encode()).hexdigest()[:16]
    venv = CACHE_DIR / f"venv-{digest}"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # pytest-xdist workers share the cache: the first one builds the venv, the others wait for it.
    with (CACHE_DIR / f"venv-{digest}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / ".complete").exists():
            build_venv(venv, project / "pyproject.toml", python)
    return venv


def build_venv(venv: Path, pyproject: Path, python: str) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([uv(), "venv", "--quiet", "--python", python, str(venv)], check=True)
    subprocess.run(
        [uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
         "-r", str(pyproject), "--group", f"{pyproject}:dev"],
        check=True,
        timeout=900,
    )  # fmt: skip
    (venv / ".complete").touch()


def _postgres_bin() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.insert(0, Path(on_path))
    if not candidates:
        pytest.fail("PostgreSQL is not installed: `apt-get install postgresql` (see .ci/run).")
    return candidates[0].resolve().parent


@contextlib.contextmanager
def running_postgres(*server_options: str) -> Iterator[str]:
    """A real PostgreSQL on a free loopback port in a temp dir, with extra server options (``-c name=value``)."""
    bindir = _postgres_bin()
    data = Path(tempfile.mkdtemp(prefix="pg-template-test-"))
    port = free_port()
    # initdb refuses to run as root; CI runs as root, so the cluster belongs to the postgres user.
    as_owner: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    password_file = data / "pw"
    password_file.write_text("template-tests\n")
    if as_owner:
        shutil.chown(password_file, "postgres", "postgres")
    subprocess.run(
        [*as_owner, str(bindir / "initdb"), "-D", str(data / "db"), "-U", "postgres", "-A", "md5",
         "--pwfile", str(password_file), "--no-sync"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    options = " ".join((f"-h 127.0.0.1 -p {port} -k {data} -F", *server_options))
    try:
        subprocess.run(
            [*as_owner, str(bindir / "pg_ctl"), "-D", str(data / "db"), "-l", str(data / "log"), "-w", "-t", "60",
             "-o", options, "start"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        url = f"postgres://postgres:template-tests@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                log = (data / "log").read_text(errors="replace")[-2000:] if (data / "log").exists() else ""
                pytest.fail(f"PostgreSQL did not accept connections on port {port} within 30 s:\n{log}")
            time.sleep(0.1)
        yield url
    finally:
        subprocess.run(
            [*as_owner, str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "-w", "stop"],
            check=False, capture_output=True, timeout=120,
        )  # fmt: skip
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL on a free loopback port in a temp dir; stopped afterwards."""
    with running_postgres() as url:
        yield url

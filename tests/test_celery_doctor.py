"""`manage.py celery_doctor` with production settings, against a real misconfigured Redis and PostgreSQL.

A Kubernetes bake (every process definition: Procfile, both compose files, the Deployments and KEDA
maxima) meets a PostgreSQL started with max_connections=20 and a Redis that evicts (allkeys-lru): both
are reported, each with its fix, and the command exits 1. The same bake against a default PostgreSQL
(max_connections=100) and the Redis the compose files run passes, saying what it checked.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bakery import free_port, read_env_file, run_in
from conftest import running_postgres
from test_generated_project import COMBINATIONS, KUBERNETES


@pytest.fixture(scope="module")
def project(bake_once) -> Path:
    return bake_once(KUBERNETES, **COMBINATIONS[KUBERNETES])


@contextlib.contextmanager
def redis_server(*config: str) -> Iterator[str]:
    """redis-server as the compose files run it (AOF, noeviction), with ``config`` overriding."""
    directory = Path(tempfile.mkdtemp(prefix="doctor-redis-"))
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory),
         "--appendonly", "yes", "--maxmemory-policy", "noeviction", "--save", "", *config],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        ping = ["redis-cli", "-p", str(port), "ping"]
        while subprocess.run(ping, capture_output=True, text=True).stdout != "PONG\n":
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not answer on port {port} (exit code {process.poll()})")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(directory, ignore_errors=True)


def doctor(project: Path, venv: Path, database_url: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    env = read_env_file(project / ".envs/.production/.django")
    env.update(DATABASE_URL=database_url, REDIS_URL=redis_url, DJANGO_EMAIL_HOST="127.0.0.1")
    return run_in(project, "python", "manage.py", "celery_doctor", venv=venv, env=env, timeout=120, check=False)


def test_a_small_postgresql_and_an_evicting_redis_stop_the_deploy(project, template_venv):
    with (
        running_postgres("-c max_connections=20") as database_url,
        redis_server("--maxmemory-policy", "allkeys-lru") as redis_url,
    ):
        result = doctor(project, template_venv, database_url, redis_url)
    output = result.stdout + result.stderr
    print(output)
    assert result.returncode == 1, output
    errors = [line for line in output.splitlines() if line.startswith("error")]
    assert any("broker: maxmemory-policy is allkeys-lru" in line for line in errors), output
    over = [line for line in errors if line.startswith("error   database:")]
    # Every definition needs more than the 17 connections left (20 less 3 reserved for superusers).
    assert {line.split(":")[1].split(" can open")[0].strip() for line in over} == {
        "Procfile", "docker-compose.yml", "docker-compose.production.yml", "deploy/kubernetes",
    }  # fmt: skip
    assert all("(17: max_connections 20 - 3 reserved)" in line for line in over), output
    assert all("Fix:" in line for line in errors)


def test_the_generated_defaults_pass_against_default_servers(project, template_venv, postgres_url):
    with redis_server() as redis_url:
        result = doctor(project, template_venv, postgres_url, redis_url)
    output = result.stdout + result.stderr
    print(output)
    assert result.returncode == 0, output
    assert "0 errors" in result.stdout
    assert "deploy/kubernetes: at most" in result.stdout
    assert "of 97 (max_connections 100 - 3 reserved)" in result.stdout

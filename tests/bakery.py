"""Helpers for the template tests: bake the template and run commands in a generated project."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
CACHE_DIR = Path(os.environ.get("TEMPLATE_TEST_CACHE", Path.home() / ".cache" / "django-celery-template-tests"))
# Every option that adds a dependency, switched on: its pyproject lists the union of all bakes' dependencies.
ALL_DEPENDENCIES_CONTEXT = {"result_backend": "django-db", "use_flower": "y", "use_sentry": "y"}
# Variables of the developer's shell that would point a generated project at the wrong services.
ISOLATED_VARIABLES = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "VIRTUAL_ENV", "PYTHONPATH",
                      "WEB_HOST_PORT", "FLOWER_HOST_PORT", "MAILPIT_HOST_PORT")  # fmt: skip
# A generated project's whole suite: 282-565 s beside three others in CI on 2 cores (2026-12-02), over 600 s once.
# Its own tests bound each wait; this only stops a hung run.
SUITE_TIMEOUT = 1500


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_env_file(path: Path) -> dict[str, str]:
    """The variables a generated env file sets (KEY=value lines; comments skipped)."""
    env = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            env[key] = value
    return env


# The Python a generated project runs on (its .python-version and Dockerfile), and the oldest it supports
# (requires-python): the generated suites run on the first, one bake's on the second.
PROJECT_PYTHON = "3.13"
FLOOR_PYTHON = "3.12"


def python_interpreter(version: str) -> str:
    """A working ``python<version>``: on PATH, in pyenv's versions, or Debian's; else fail saying how to get one.

    uv is not asked: it may not download interpreters where no internet answers, and it rejects pyenv's shim
    for a version that is not pyenv's global one.
    """
    candidates = [shutil.which(f"python{version}") or ""]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    installed = pyenv_root.glob(f"versions/{version}.*/bin/python{version}")
    # The newest patch release first: 3.13.10 before 3.13.9.
    candidates += [str(path) for path in sorted(installed, key=lambda path: _release(path.parts[-3]), reverse=True)]
    candidates += [f"/usr/local/bin/python{version}", f"/usr/bin/python{version}"]
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    pytest.fail(
        f"The generated projects run on Python {version}, and no working python{version} was found on PATH, in "
        f"{pyenv_root}/versions or /usr/bin. Install it (`pyenv install {version}`, or `uv python install "
        f"{version}` where GitHub answers) and run again (see .ci/run).",
        pytrace=False,
    )


def _release(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not Path(found).exists():
        pytest.fail("The template tests need uv: `pip install uv` (see .ci/run).")
    return found


def project_env(venv: Path | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ISOLATED_VARIABLES}
    if venv is not None:
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(venv)
    env.update(extra or {})
    return env


def run_in(
    project: Path,
    *argv: str,
    venv: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command in a generated project; on failure, fail the test with its output."""
    result = subprocess.run(
        argv,
        cwd=project,
        env=project_env(venv, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"`{' '.join(argv)}` exited {result.returncode} in {project}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}",
            pytrace=False,
        )
    return result


def run_cookiecutter(output_dir: Path, **context: str) -> subprocess.CompletedProcess[str]:
    """Run cookiecutter's command line as a user would, answers given as key=value."""
    return subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(output_dir), str(TEMPLATE_DIR)]
        + [f"{key}={value}" for key, value in context.items()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def bake_project(output_dir: Path, **context: str) -> Path:
    """Bake with cookiecutter's command line; return the generated project directory."""
    result = run_cookiecutter(output_dir, **context)
    if result.returncode != 0:
        pytest.fail(f"cookiecutter failed for {context}:\n{result.stdout}\n{result.stderr}", pytrace=False)
    (project,) = [path for path in output_dir.iterdir() if path.is_dir()]
    return project

"""Every option combination the template claims to support renders, lints, checks and passes its own suite."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from bakery import SUITE_TIMEOUT, read_env_file, run_in

# The defaults, everything switched off, three bakes that between them give every other answer of every prompt,
# and RabbitMQ as the broker: each bake costs a full run of the generated suite (minutes), so the answers that change
# no task code (Sentry, Kubernetes, the CI tool) share bakes with those that do (examples, result backend, Flower).
COMBINATIONS = {
    "defaults": {},
    "redis-results+sentry+kubernetes+gitlab": {
        "result_backend": "redis",
        "use_sentry": "y",
        "use_kubernetes": "y",
        "ci_tool": "gitlab",
    },
    "no-results+no-flower+no-ci": {"result_backend": "none", "use_flower": "n", "ci_tool": "none"},
    "no-examples+sentry+kubernetes": {"include_examples": "n", "use_sentry": "y", "use_kubernetes": "y"},
    "all-off": {
        "include_examples": "n",
        "result_backend": "none",
        "use_flower": "n",
        "use_sentry": "n",
        "ci_tool": "none",
    },
    # Its suite starts a RabbitMQ node of its own (Debian's rabbitmq-server) besides its Redis; its manifests scale
    # on RabbitMQ queues.
    "rabbitmq": {"broker": "rabbitmq", "use_kubernetes": "y"},
}
# The bakes the Kubernetes tests read (one per broker) and the one the no-Flower tests read.
KUBERNETES = "redis-results+sentry+kubernetes+gitlab"
KUBERNETES_RABBITMQ = "rabbitmq"
NO_FLOWER = "no-results+no-flower+no-ci"
UNRENDERED = re.compile(r"{{\s*cookiecutter|{%-?\s*(if|for|endif|raw)\b|cookiecutter\.")
# Django's own templates use {% if %} and {% for %}: in them only a cookiecutter variable is left over.
UNRENDERED_IN_DJANGO_TEMPLATE = re.compile(r"{{\s*cookiecutter|cookiecutter\.")


@pytest.fixture(params=list(COMBINATIONS), ids=list(COMBINATIONS))
def project(request, bake_once) -> Path:
    return bake_once(request.param, **COMBINATIONS[request.param])


def leftover_template_syntax(path: Path) -> bool:
    django_template = path.suffix == ".html" and "templates" in path.parts
    pattern = UNRENDERED_IN_DJANGO_TEMPLATE if django_template else UNRENDERED
    return bool(pattern.search(path.read_text(errors="ignore")))


def test_no_template_syntax_is_left(project):
    leftovers = [
        str(path.relative_to(project))
        for path in project.rglob("*")
        if path.is_file() and ".git" not in path.parts and leftover_template_syntax(path)
    ]
    assert leftovers == []


@pytest.mark.parametrize("interpreter", ["project", "template"])
def test_every_python_file_compiles(project, template_venv, tmp_path, interpreter):
    """With the project's own Python, and with the one running these tests (3.11 here): a reviewer's or an editor's
    tooling may parse the files with whatever Python the machine has, and a file using syntax newer than that (PEP
    695's `def f[T]`) stops it. The bytecode goes to a temp dir, not into the shared bake."""
    python = "python" if interpreter == "project" else sys.executable
    run_in(
        project, python, "-m", "compileall", "-q", "-f", "-x", r"/\.venv/", ".",
        venv=template_venv if interpreter == "project" else None, env={"PYTHONPYCACHEPREFIX": str(tmp_path)},
    )  # fmt: skip


def test_ruff_check_and_format_pass(project, template_venv):
    run_in(project, "ruff", "check", ".", venv=template_venv)
    run_in(project, "ruff", "format", "--check", ".", venv=template_venv)


def test_mypy_passes(project, template_venv):
    run_in(project, "mypy", ".", venv=template_venv, timeout=900)


def test_make_lint_type_checks_a_teams_code(bake, template_venv):
    """A type error in code a team adds fails `make lint` (mypy runs there, on the whole project), named."""
    project = bake()
    planted = project / "my_project" / "billing.py"
    module = '"""A module a team adds."""\n\n\ndef total_cents(amount: int) -> int:\n    return {}\n'
    planted.write_text(module.format('amount + "00"'))
    result = run_in(project, "make", "lint", "RUN=", venv=template_venv, timeout=900, check=False)
    assert result.returncode != 0
    assert 'my_project/billing.py:5: error: Unsupported operand types for + ("int" and "str")' in result.stdout
    planted.write_text(module.format("amount * 100"))
    run_in(project, "mypy", ".", venv=template_venv, timeout=900)


def test_deptry_finds_every_import_declared_and_every_dependency_used(project, template_venv):
    run_in(project, "deptry", ".", venv=template_venv)


def test_manage_py_check_passes_with_local_settings(project, template_venv):
    run_in(project, "python", "manage.py", "check", "--fail-level", "WARNING", venv=template_venv)


def test_check_deploy_passes_with_production_settings(project, template_venv):
    result = run_in(
        project,
        "python", "manage.py", "check", "--deploy", "--fail-level", "WARNING",
        venv=template_venv,
        env=read_env_file(project / ".envs/.production/.django"),
    )  # fmt: skip
    assert "System check identified no issues" in result.stdout


def test_hsts_preload_is_off_until_chosen(project, template_venv):
    """Preloading binds every subdomain to HTTPS for months: production leaves it to the team (docs/decisions.md)."""
    show = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SECURE_HSTS_PRELOAD, s.SILENCED_SYSTEM_CHECKS)"
    )
    env = read_env_file(project / ".envs/.production/.django")
    default = run_in(project, "python", "-c", show, venv=template_venv, env=env)
    assert default.stdout.splitlines()[-1] == "False ['security.W021']"
    env["DJANGO_SECURE_HSTS_PRELOAD"] = "True"
    chosen = run_in(project, "python", "-c", show, venv=template_venv, env=env)
    assert chosen.stdout.splitlines()[-1] == "True []"


def test_migrations_are_complete(project, template_venv):
    run_in(project, "python", "manage.py", "makemigrations", "--check", "--dry-run", venv=template_venv)


# The default bake's suite runs in test_generated_suite_environments.py, on PostgreSQL from its own declared
# dependencies: running it here as well cost CI 7 minutes of a worker (README.md, "Template tests").
SUITE_COMBINATIONS = [name for name in COMBINATIONS if name != "defaults"]


@pytest.mark.parametrize("name", SUITE_COMBINATIONS)
def test_generated_test_suite_passes(bake_once, template_venv, name):
    project = bake_once(name, **COMBINATIONS[name])
    result = run_in(
        project, "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", venv=template_venv, timeout=SUITE_TIMEOUT
    )  # fmt: skip
    assert re.search(r"\d+ passed", result.stdout)
    assert "skipped" not in result.stdout.splitlines()[-1]

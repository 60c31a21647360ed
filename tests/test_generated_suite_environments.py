"""The default bake's suite on PostgreSQL, and from a virtualenv built from its pyproject.toml alone."""

from __future__ import annotations

import re

from bakery import run_in, uv


def test_default_project_suite_passes_on_postgresql(bake_once, template_venv, postgres_url):
    project = bake_once("defaults")
    result = run_in(
        project, "python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
        venv=template_venv, env={"DATABASE_URL": postgres_url},
    )  # fmt: skip
    assert re.search(r"\d+ passed", result.stdout)
    assert "postgresql" in run_in(
        project, "python", "-c",
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings.test'; django.setup(); "
        "from django.db import connection; print(connection.vendor)",
        venv=template_venv, env={"DATABASE_URL": postgres_url},
    ).stdout  # fmt: skip


def test_declared_dependencies_are_complete(bake):
    """`uv sync` from the generated pyproject.toml alone gives an environment that passes the suite."""
    project = bake()
    run_in(project, uv(), "sync", "--quiet", timeout=900)
    venv = project / ".venv"
    result = run_in(project, "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", venv=venv)
    assert re.search(r"\d+ passed", result.stdout)

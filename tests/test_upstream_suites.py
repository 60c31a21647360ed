"""The upstream canary, exercised from a generated project (one copy: its tools/upstream/).

`make upstream-check` runs kombu's Redis transport tests (unit, and integration against real redis-servers),
django-celery-results' database backend tests (on a real PostgreSQL) and django-celery-beat's scheduler tests,
from the sdists of the versions under test, with the project's classes in place of upstream's, and compares each
method a patch overrides between the versions the patches were tested with and those under test. Here: it passes
in a default bake (every suite of the vetted exclusion list holds, every override the same), and fails, with the
methods' diffs, against an older kombu whose Redis transport differs. Run it alone:
``uv run --group test pytest -m upstream``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from bakery import CACHE_DIR, run_in, uv
from test_generated_project import COMBINATIONS

pytestmark = pytest.mark.upstream

# The canary's virtualenvs and sdists, kept between runs as a project keeps its .upstream-check/.
CHECK_CACHE = CACHE_DIR / "upstream-check"
# Each run's output, to read after pytest has removed its tmp dirs.
ARTIFACTS = Path(os.environ.get("TEMPLATE_TEST_ARTIFACTS", CACHE_DIR / "artifacts")) / "upstream-check"
SUITES = {"kombu-unit", "kombu-integration", "kombu-integration-project-options", "results", "beat"}
# kombu 5.6.0's Redis transport differs from 5.7.0's in methods the kombu patch overrides.
OLDER_KOMBU = "5.6.0"


def upstream_check(project: Path, bake: str, venv: Path, database_url: str | None, report: Path, *variables: str):
    """`make upstream-check` in the bake; its result and its JSON report. ``database_url``: PostgreSQL's, or None."""
    # A cache per bake: the two tests run at once, and a cache is used by one check at a time.
    env = {"UV": uv(), "UPSTREAM_CHECK_CACHE": str(CHECK_CACHE / bake), "UPSTREAM_CHECK_REPORT": str(report)}
    if database_url:
        env["DATABASE_URL"] = database_url
    started = time.monotonic()
    result = run_in(
        project, "make", "upstream-check", "RUN=", *variables, venv=venv, env=env, timeout=1500, check=False
    )
    took = time.monotonic() - started
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = "-".join(variables) or "default"
    (ARTIFACTS / f"{name}.txt").write_text(result.stdout + result.stderr)
    print(f"make upstream-check {' '.join(variables)}: exit {result.returncode} in {took:.0f} s")
    return result, json.loads(report.read_text()) if report.exists() else {}


def test_the_canary_passes_in_a_default_bake_and_fails_with_the_diffs_against_an_older_kombu(
    bake_once, template_venv, postgres_url, tmp_path
):
    project = bake_once("defaults")  # result_backend=django-db: all three patch modules

    result, report = upstream_check(project, "defaults", template_venv, postgres_url, tmp_path / "default.json")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    print(output[output.index("upstream suites") :])
    assert set(report["suites"]) == SUITES
    assert report["problems"] == []
    assert report["differing"] == 0
    assert report["changed"] == {}
    assert report["versions"] == report["tested_with"], "the project installs other versions than it was checked with"
    for name, suite in report["suites"].items():
        assert " 0 passed" not in suite["line"], (name, suite["line"])
        assert " 0 instances" not in suite["line"], (name, suite["line"])
    # The overrides are listed, each the same as in the versions the patches were tested with.
    assert "same     kombu.transport.redis.Channel._brpop_read" in output
    assert "same     django_celery_beat.schedulers.DatabaseScheduler.reserve" in output
    # The project's transport option takes the atomic receive (BLMOVE) that kombu's default options do not.
    assert report["suites"]["kombu-integration-project-options"]["calls"].get("BLMOVE", 0) > 0
    assert report["suites"]["kombu-integration"]["calls"].get("BLMOVE", 0) == 0

    result, report = upstream_check(
        project,
        "defaults",
        template_venv,
        postgres_url,
        tmp_path / "older.json",
        f"KOMBU={OLDER_KOMBU}",
        "ONLY=kombu-unit",
    )
    output = result.stdout + result.stderr
    # make exits 2 on any failing recipe; the check's report tells a failed check from one that could not run.
    assert result.returncode != 0, output[-8000:]
    assert not report["ok"], output[-8000:]
    assert "cannot_run" not in report, output[-8000:]
    assert report["changed"] == {"kombu": [report["tested_with"]["kombu"], OLDER_KOMBU]}
    assert report["differing"] >= 1
    assert "DIFFERS  kombu.transport.redis.Channel._brpop_read" in output
    assert f"--- kombu=={report['tested_with']['kombu']}" in output  # with the method's diff
    assert f"changed: kombu {report['tested_with']['kombu']} -> {OLDER_KOMBU}" in output
    # Overrides of the packages whose version did not change stay the same.
    assert "same     celery.worker.request.Request.on_timeout" in output


def test_the_canary_checks_only_what_a_project_without_the_database_result_backend_installs(
    bake_once, template_venv, tmp_path
):
    project = bake_once("all-off", **COMBINATIONS["all-off"])  # result_backend=none: no django-celery-results
    result, report = upstream_check(
        project, "all-off", template_venv, None, tmp_path / "all-off.json", "ONLY=kombu-unit,beat"
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-8000:]
    assert set(report["versions"]) == {"kombu", "celery", "django-celery-beat"}
    assert set(report["suites"]) == {"kombu-unit", "beat"}

    result, report = upstream_check(
        project, "all-off", template_venv, None, tmp_path / "results.json", "RESULTS=2.6.0"
    )
    assert result.returncode != 0
    assert report["cannot_run"] == "this project does not install django-celery-results: nothing of it to check"

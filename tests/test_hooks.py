"""The pre-generation hook rejects bad answers before writing anything; the post hook writes secrets."""

from __future__ import annotations

import stat
import subprocess

import pytest
from bakery import read_env_file, run_cookiecutter

BAD_ANSWERS = [
    ("project_slug", "My-Project", "lowercase Python identifier"),
    ("project_slug", "2fast", "lowercase Python identifier"),
    ("project_slug", "class", "keyword"),
    ("project_slug", "match", "keyword"),
    ("project_slug", "celery", "shadow"),
    ("project_slug", "config", "shadow"),
    ("project_slug", "tests", "shadow"),
    ("project_slug", "tools", "shadow"),
    ("project_slug", "json", "shadow"),
    ("project_slug", "logging", "shadow"),
    ("email", "not-an-email", "look like an address"),
    ("email", "a@b", "look like an address"),
    ("timezone", "Mars/Olympus_Mons", "IANA time zone"),
    ("timezone", "utc+2", "IANA time zone"),
    ("domain_name", "https://example.com", "host name"),
    ("domain_name", "localhost", "host name"),
    ("domain_name", "exa mple.com", "host name"),
    ("include_examples", "yes", "not one of y, n"),
    ("use_flower", "maybe", "not one of y, n"),
    ("use_sentry", "yes", "not one of y, n"),
]


@pytest.mark.parametrize(("field", "value", "reason"), BAD_ANSWERS, ids=[f"{f}={v}" for f, v, _ in BAD_ANSWERS])
def test_bad_answer_is_rejected_with_its_field_and_value_and_nothing_is_written(tmp_path, field, value, reason):
    result = run_cookiecutter(tmp_path, **{field: value})
    assert result.returncode != 0
    assert f"{field}: {value!r}" in result.stderr
    assert reason in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("field", "value"), [("result_backend", "mongodb"), ("ci_tool", "jenkins"), ("broker", "sqs")]
)
def test_a_list_choice_outside_its_list_is_rejected_by_cookiecutter_and_nothing_is_written(tmp_path, field, value):
    result = run_cookiecutter(tmp_path, **{field: value})
    assert result.returncode != 0
    assert f"{value} provided for choice variable {field}" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_every_bad_answer_is_reported_at_once(tmp_path):
    result = run_cookiecutter(tmp_path, email="nope", timezone="Nowhere/City")
    assert "email: 'nope'" in result.stderr
    assert "timezone: 'Nowhere/City'" in result.stderr


def test_slug_is_derived_from_the_project_name(bake):
    project = bake(project_name="Order Tracking-Service")
    assert project.name == "order_tracking_service"
    assert (project / "order_tracking_service" / "taskqueue" / "checks.py").exists()


ENV_FILES = [".env", ".envs/.local/.django", ".envs/.local/.postgres", ".envs/.production/.django",
             ".envs/.production/.postgres", ".envs/.production/.redis"]  # fmt: skip


def test_secrets_are_generated_per_project_and_readable_only_by_the_owner(bake):
    first, second = bake(), bake()
    for relative in ENV_FILES:
        assert stat.S_IMODE((first / relative).stat().st_mode) == 0o600, relative
    for relative, key in [
        (".envs/.production/.django", "DJANGO_SECRET_KEY"),
        (".envs/.production/.django", "FLOWER_PASSWORD"),
        (".envs/.production/.postgres", "POSTGRES_PASSWORD"),
        (".envs/.production/.redis", "REDIS_PASSWORD"),
    ]:
        one, other = read_env_file(first / relative)[key], read_env_file(second / relative)[key]
        assert one != other, f"{key} is the same in two projects"
        assert len(one) >= 32


def test_production_urls_carry_the_generated_passwords(bake):
    project = bake()
    django = read_env_file(project / ".envs/.production/.django")
    assert read_env_file(project / ".envs/.production/.postgres")["POSTGRES_PASSWORD"] in django["DATABASE_URL"]
    assert read_env_file(project / ".envs/.production/.redis")["REDIS_PASSWORD"] in django["REDIS_URL"]
    assert len(django["DJANGO_SECRET_KEY"]) >= 50


SECRET_FILES = [".env", ".envs/.production/.django", ".envs/.production/.postgres", ".envs/.production/.redis"]
LOCAL_FILES = [".envs/.local/.django", ".envs/.local/.postgres"]


def test_production_secrets_are_ignored_by_git_and_the_local_env_files_are_not(bake):
    # A teammate's clone has the local containers' env files, so `docker compose up` works as cloned.
    project = bake()
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    ignored = subprocess.run(
        ["git", "check-ignore", *ENV_FILES], cwd=project, capture_output=True, text=True, check=False
    ).stdout.split()
    assert sorted(ignored) == sorted(SECRET_FILES)
    assert sorted(set(ENV_FILES) - set(ignored)) == sorted(LOCAL_FILES)


def test_make_writes_a_fresh_env_for_make_dev_where_a_clone_has_none(bake):
    project = bake()
    baked = read_env_file(project / ".env")
    (project / ".env").unlink()
    result = subprocess.run(["make", ".env"], cwd=project, capture_output=True, text=True, check=True)
    assert "Wrote .env" in result.stdout
    written = read_env_file(project / ".env")
    assert sorted(written) == sorted(baked)
    assert written["DJANGO_SETTINGS_MODULE"] == "config.settings.local"
    assert written["REDIS_URL"] == "redis://localhost:6379/0"
    assert written["DJANGO_SECRET_KEY"] != baked["DJANGO_SECRET_KEY"]
    assert len(written["DJANGO_SECRET_KEY"]) >= 50
    assert stat.S_IMODE((project / ".env").stat().st_mode) == 0o600
    # It never overwrites one that exists.
    assert "up to date" in subprocess.run(["make", ".env"], cwd=project, capture_output=True, text=True).stdout


def test_next_steps_are_printed(tmp_path):
    result = run_cookiecutter(tmp_path, project_name="Shop")
    assert result.returncode == 0, result.stderr
    assert "cd shop" in result.stdout

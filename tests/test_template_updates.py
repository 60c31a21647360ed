"""A project generated from an earlier version of this template, lived in by its team, takes this version's changes
with `cruft update`: its secrets stay as they were, the team's edits survive, and it still passes its checks, its
team's delivery contract and the tests of the files the team edited.

The earlier version is a commit of this repository's history (EARLIEST: the oldest an update is supported from,
CHANGELOG.md); "this version" is the working tree, committed on top of a local clone, as a release would be.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from bakery import TEMPLATE_DIR, run_in
from test_delivery_contracts import BODIES, TASKS, add_billing_app, run_contract
from test_generated_project import COMBINATIONS

# The oldest commit a project can be updated from (CHANGELOG.md): the last one before the template had versions.
EARLIEST = "372b7b09dbd6491a66b01f36fdcff40ac78fd615"
IDENTITY = {
    "GIT_AUTHOR_NAME": "Team",
    "GIT_AUTHOR_EMAIL": "team@example.com",
    "GIT_COMMITTER_NAME": "Team",
    "GIT_COMMITTER_EMAIL": "team@example.com",
}
# The renders cruft makes to diff two versions need no lock: the project's uv.lock is never touched (cruft's skip).
CRUFT_ENV = {**IDENTITY, "SKIP_UV_LOCK": "1"}
# What CHANGELOG.md asks of a project generated before the first version, before its first update (the update then
# brings the same list in pyproject.toml's [tool.cruft], for the updates after it).
SKIP = [".env", ".envs", "uv.lock"]


def git(cwd: Path, *argv: str) -> str:
    result = subprocess.run(
        ["git", *argv], cwd=cwd, env={**os.environ, **IDENTITY}, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"git {' '.join(argv)} in {cwd}: {result.stderr}"
    return result.stdout


def cruft(cwd: Path, *argv: str, env: dict[str, str] = CRUFT_ENV) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cruft", *argv],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A clone of this repository with the working tree committed on top; returns it and that commit."""
    repo = tmp_path_factory.mktemp("template") / "repo"
    git(TEMPLATE_DIR, "clone", "--quiet", str(TEMPLATE_DIR), str(repo))
    missing = subprocess.run(["git", "cat-file", "-e", f"{EARLIEST}^{{commit}}"], cwd=repo, check=False)
    assert missing.returncode == 0, f"the clone has no commit {EARLIEST}: run the tests from a full clone"
    files = git(TEMPLATE_DIR, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for tracked in git(repo, "ls-files", "-z").split("\0"):
        if tracked:
            (repo / tracked).unlink()
    for name in filter(None, files):
        source = TEMPLATE_DIR / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "--allow-empty", "-m", "The working tree")
    return repo, git(repo, "rev-parse", "HEAD").strip()


def secrets_of(project: Path) -> dict[str, bytes]:
    """Every env file the hook wrote: .env and everything under .envs/."""
    return {
        str(path.relative_to(project)): path.read_bytes()
        for path in [project / ".env", *sorted((project / ".envs").rglob("*"))]
        if path.is_file()
    }


@pytest.mark.parametrize("name", ["defaults", "all-off"])
def test_a_project_from_an_earlier_version_takes_this_one_keeping_its_secrets_and_its_edits(
    template_repo, template_venv, tmp_path, name
):
    repo, release = template_repo
    created = cruft(
        tmp_path,
        "create", str(repo), "--checkout", EARLIEST, "--no-input",
        "--extra-context", json.dumps(COMBINATIONS[name]), "--output-dir", str(tmp_path),
        env=IDENTITY,  # its hook writes uv.lock, which the team commits
    )  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr
    project = tmp_path / "my_project"
    git(project, "init", "--quiet")
    git(project, "add", "-A")
    git(project, "commit", "--quiet", "-m", "Generated")

    # A team's months: an app with a task, a setting changed, a compose port moved; committed.
    tasks = add_billing_app(project, template_venv)
    tasks.write_text(TASKS.format(package="my_project", body=BODIES["idempotent"]))
    settings = project / "config" / "settings" / "base.py"
    setting = 'LANGUAGE_CODE = "en-us"'
    assert setting in settings.read_text()
    settings.write_text(settings.read_text().replace(setting, 'LANGUAGE_CODE = "en-gb"'))
    compose = project / "docker-compose.yml"
    port = '"127.0.0.1:${WEB_HOST_PORT:-8000}:8000"'
    assert port in compose.read_text()
    compose.write_text(compose.read_text().replace(port, port.replace(":-8000}", ":-8080}")))
    edited = {"config/settings/base.py", "docker-compose.yml"}
    git(project, "add", "-A")
    git(project, "commit", "--quiet", "-m", "Billing; British English; the web port moved")

    # CHANGELOG.md, 2026.12.05: a project from before the first version lists what cruft must skip, once.
    pyproject = project / "pyproject.toml"
    if "[tool.cruft]" not in pyproject.read_text():
        state = json.loads((project / ".cruft.json").read_text())
        (project / ".cruft.json").write_text(json.dumps({**state, "skip": SKIP}, indent=2) + "\n")
        git(project, "commit", "--quiet", "-am", "Ready for template updates")
    secrets = secrets_of(project)

    updated = cruft(project, "update", "--checkout", release, "--skip-apply-ask")
    assert updated.returncode == 0, updated.stdout + updated.stderr
    conflicted = set(git(project, "diff", "--name-only", "--diff-filter=U").split())
    rejected = {str(path.relative_to(project)) for path in project.rglob("*.rej")}
    # Conflicts only where the team edited what the template changed too; none in the secrets.
    assert conflicted | rejected <= edited, (conflicted, rejected, updated.stdout + updated.stderr)
    assert secrets_of(project) == secrets
    changed = git(project, "status", "--porcelain").splitlines()
    assert not [line for line in changed if ".env" in line], changed

    # This version arrived: its version recorded, its new files present; the team's edits stayed.
    version = json.loads((repo / "cookiecutter.json").read_text())["_template_version"]
    assert tomllib.loads(pyproject.read_text())["tool"]["template"]["version"] == version
    assert (project / "tests/contracts/test_broker_held.py").exists()
    assert 'LANGUAGE_CODE = "en-gb"' in settings.read_text()
    assert ":-8080}" in compose.read_text()
    assert (project / "my_project/billing/tasks.py").read_text() == TASKS.format(
        package="my_project", body=BODIES["idempotent"]
    )
    assert json.loads((project / ".cruft.json").read_text())["commit"] == release

    if conflicted | rejected:
        pytest.fail(f"the update left conflicts to resolve in {sorted(conflicted | rejected)}: {updated.stdout}")
    # The merged project: Django's checks, its migrations complete, every test module imports. Its whole suite is the
    # current template's suite, which runs for every bake in test_generated_project.py and
    # test_generated_suite_environments.py; rerunning it here (the defaults) cost a CI worker 330 s in a fresh-clone
    # run (README.md, "Template tests"). What the update adds to it runs instead: the team's task held to its contract,
    # and the modules that read the files the team edited (the compose files, the settings).
    run_in(project, "python", "manage.py", "check", venv=template_venv)
    run_in(project, "python", "manage.py", "makemigrations", "--check", "--dry-run", venv=template_venv)
    collected = run_in(
        project, "python", "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", venv=template_venv
    )  # fmt: skip
    assert re.search(r"\d+(/\d+)? tests collected", collected.stdout), collected.stdout[-2000:]
    if name != "defaults":
        return
    contract = run_contract(project, template_venv, "duplicate or kill-after-effect")
    assert contract.returncode == 0, contract.stdout[-4000:]
    assert re.search(r"\b2 passed\b", contract.stdout), contract.stdout[-2000:]
    edited_files = run_in(
        project, "python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
        "tests/test_process_definitions.py", "tests/test_procfile.py", "tests/taskqueue/test_checks.py",
        "tests/taskqueue/test_settings.py", venv=template_venv, timeout=600,
    )  # fmt: skip
    assert re.search(r"\d+ passed", edited_files.stdout), edited_files.stdout[-2000:]
    assert "skipped" not in edited_files.stdout.splitlines()[-1]


def test_an_update_between_two_versions_of_this_one_rewrites_no_secret(template_repo, tmp_path):
    """From this version on, the project's own [tool.cruft] skip keeps the secrets: no step by hand."""
    repo, release = template_repo
    created = cruft(tmp_path, "create", str(repo), "--checkout", release, "--no-input", "--output-dir", str(tmp_path))
    assert created.returncode == 0, created.stdout + created.stderr
    project = tmp_path / "my_project"
    git(project, "init", "--quiet")
    git(project, "add", "-A")
    git(project, "commit", "--quiet", "-m", "Generated")
    secrets = secrets_of(project)
    assert {".env", ".envs/.local/.django", ".envs/.production/.django"} <= set(secrets)

    # A later version that changes a secrets file's template too: the hook writes new values at every render.
    readme = repo / "{{cookiecutter.project_slug}}" / "README.md"
    readme.write_text(readme.read_text() + "\nA later version.\n")
    hook = repo / "hooks" / "post_gen_project.py"
    assert '"EMAIL_PORT": "1025",' in hook.read_text()
    hook.write_text(
        hook.read_text().replace('"EMAIL_PORT": "1025",', '"EMAIL_PORT": "1025",\n            "LATER": "1",')
    )
    git(repo, "commit", "--quiet", "-am", "A later version")
    later = git(repo, "rev-parse", "HEAD").strip()
    try:
        updated = cruft(project, "update", "--checkout", later, "--skip-apply-ask")
    finally:
        git(repo, "reset", "--quiet", "--hard", release)  # the module's other tests update to `release`
    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert (project / "README.md").read_text().endswith("\nA later version.\n")
    assert secrets_of(project) == secrets
    assert not list(project.rglob("*.rej")), updated.stdout
    assert git(project, "diff", "--name-only", "--diff-filter=U") == ""


def test_the_changelog_leads_with_the_version_that_generated_projects_record():
    version = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())["_template_version"]
    changelog = (TEMPLATE_DIR / "CHANGELOG.md").read_text()
    entries = re.split(r"^## ", changelog, flags=re.MULTILINE)[1:]
    # What is on main since the last version comes first, under "Unreleased", and says the same two things.
    if entries and entries[0].startswith("Unreleased\n"):
        unreleased, *entries = entries
        assert "What changes in a project:" in unreleased
        assert "What to do:" in unreleased
    versions = [entry.split("\n", 1)[0] for entry in entries]
    assert versions[0] == version, f"cookiecutter.json says {version}; CHANGELOG.md's newest entry is {versions[0]}"
    assert all(re.fullmatch(r"\d{4}\.\d{2}\.\d{2}", name) for name in versions), versions
    assert versions == sorted(versions, reverse=True), versions
    for name, entry in zip(versions, entries, strict=True):
        assert "What changes in a project:" in entry, f"{name}: say what changes in a generated project"
        assert "What to do:" in entry, f"{name}: say what its team does"

"""The images install exactly the versions in uv.lock, and the lock is the one pyproject.toml asks for.

The Dockerfile runs `uv sync --locked`, which refuses a lock that no longer matches pyproject.toml; this
catches it before a build does, without network access.
"""

import tomllib

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from tools.procfile import PROJECT_DIR

LOCK = PROJECT_DIR / "uv.lock"


def wanted(requirements: list[str]) -> set[tuple]:
    parsed = [Requirement(text) for text in requirements]
    return {(canonicalize_name(req.name), tuple(sorted(req.extras)), str(req.specifier)) for req in parsed}


def locked(entries: list[dict]) -> set[tuple]:
    found = set()
    for entry in entries:
        extras = tuple(sorted(entry.get("extras", [])))
        found.add((canonicalize_name(entry["name"]), extras, str(SpecifierSet(entry.get("specifier", "")))))
    return found


def test_the_image_installs_the_locked_versions():
    dockerfile = (PROJECT_DIR / "Dockerfile").read_text()
    assert "COPY pyproject.toml uv.lock" in dockerfile
    assert "uv sync --locked" in dockerfile


def test_uv_lock_matches_pyproject_and_pins_every_package_by_hash():
    assert LOCK.exists(), "no uv.lock: run `uv lock` and commit it (the image installs from it)"
    pyproject = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())
    lock = tomllib.loads(LOCK.read_text())
    name = canonicalize_name(pyproject["project"]["name"])
    (root,) = [package for package in lock["package"] if canonicalize_name(package["name"]) == name]
    stale = "uv.lock is stale: run `uv lock` and commit it"
    assert locked(root["metadata"]["requires-dist"]) == wanted(pyproject["project"]["dependencies"]), stale
    for group, requirements in pyproject.get("dependency-groups", {}).items():
        assert locked(root["metadata"]["requires-dev"][group]) == wanted(requirements), stale
    for package in lock["package"]:
        if "registry" not in package.get("source", {}):
            continue  # the project itself
        artifacts = [package.get("sdist", {}), *package.get("wheels", [])]
        hashes = [artifact.get("hash", "") for artifact in artifacts if artifact]
        assert hashes, package["name"]
        assert all(value.startswith("sha256:") for value in hashes), package["name"]

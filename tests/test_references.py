"""Every reference in a generated project resolves inside the generated tree.

A comment, docstring or document may point at a file, a README section or a practice number;
each must name something the generated project has (not this template's PRACTICES.md, not a
module that moved). Upstream source files (``kombu/transport/redis.py``) are cited as such.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_generated_project import COMBINATIONS

TEXT_SUFFIXES = {".py", ".md", ".yml", ".yaml", ".toml", ".txt", ".cfg", ".ini", ".json", ".env", ""}
# Caches and state the other template tests leave in a shared bake (ruff, pytest, collectstatic).
SKIPPED_PARTS = {".git", ".venv", "__pycache__", "node_modules", ".ruff_cache", ".pytest_cache", "staticfiles"}
# Paths that start with an installed package's name are that package's own files, cited from upstream.
UPSTREAM_PACKAGES = ("celery", "kombu", "django_celery_beat", "django_celery_results", "redis", "billiard", "django")
# A word with slashes or a file extension, not inside a URL or a longer path.
PATH_LIKE = re.compile(r"(?<![\w/.:@$-])([\w.-]+(?:/[\w.-]+)*/?)")
FILE_SUFFIXES = (".py", ".md", ".yml", ".yaml", ".toml", ".sh", ".txt")
# A dotted Python path into the project's own packages, as settings and docs name classes.
# Only quoted ones: a dotted path in code is an import or an attribute, which running the code checks.
MODULE_PATH = re.compile(r"(?<=[\"'`])((?:config|tests|tools|my_project)(?:\.\w+)+)")
PRACTICE_NUMBER = re.compile(r"\bP\d{1,2}\b")
SECTION_REFERENCE = re.compile(r"((?:docs/)?[\w-]+\.md|README)(?:'s)? \"([^\"]+)\"")
# Written by the project's own commands or tools, not shipped: a reference to one is an instruction.
# `make upstream-check` writes its files under .upstream-check/.
CREATED_LATER = {"uv.lock", "db.sqlite3", "staticfiles.json", "under-test.txt", "resolved.txt", "overrides.txt",
                 "output.txt"}  # fmt: skip
CREATED_LATER_UNDER = (".upstream-check/",)
# The test trees of the upstream sdists `make upstream-check` downloads (kombu's, django-celery-beat's,
# django-celery-results'): upstream's files, cited as such.
UPSTREAM_TEST_TREE = "t/"
# The README's how-to creates an app and a queue under these names.
HOW_TO_NAMES = ("billing", "worker-reports")


@pytest.fixture(params=list(COMBINATIONS), ids=list(COMBINATIONS))
def project(request, bake_once) -> Path:
    return bake_once(request.param, **COMBINATIONS[request.param])


def text_files(project: Path) -> list[Path]:
    return [
        path
        for path in sorted(project.rglob("*"))
        if path.is_file()
        and not SKIPPED_PARTS & set(path.relative_to(project).parts)
        and path.suffix in TEXT_SUFFIXES
        and not path.name.startswith(".env")
    ]


def tree(project: Path) -> set[str]:
    return {str(path.relative_to(project)) for path in project.rglob("*")}


def resolves(reference: str, source: Path, project: Path, paths: set[str]) -> bool:
    reference = reference.rstrip(".").removeprefix("./").rstrip("/")
    if reference.split("/")[0] in UPSTREAM_PACKAGES or reference in CREATED_LATER:
        return True
    if reference.startswith((*CREATED_LATER_UNDER, UPSTREAM_TEST_TREE)):
        return True
    if any(name in reference for name in HOW_TO_NAMES):
        return True
    if reference in paths or (source.parent / reference).exists():
        return True
    # A path given from inside a package (``taskqueue/checks.py``) or a bare module name.
    return any(path == reference or path.endswith(f"/{reference}") for path in paths)


def headings(markdown: Path) -> set[str]:
    return {line.lstrip("#").strip() for line in markdown.read_text().splitlines() if line.startswith("#")}


def path_references(line: str, top_level: set[str]) -> list[str]:
    """Words of a line that name a file or folder: with a file suffix, or under a top-level folder of the project."""
    found = []
    for word in PATH_LIKE.findall(line):
        word = word.rstrip(".")
        if word in FILE_SUFFIXES or word.endswith("-"):
            continue  # a suffix or a prefix in prose: "*.py", "compose/start-*"
        if word.endswith(FILE_SUFFIXES) or ("/" in word and word.split("/")[0] in top_level):
            found.append(word)
    return found


def module_resolves(dotted: str, project: Path) -> bool:
    """A dotted path resolves if a prefix is a module or package and the rest is defined in it."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        base = project.joinpath(*parts[:end])
        module = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        if module.is_file():
            rest = parts[end:]
            return not rest or bool(re.search(rf"^(class|def) {rest[0]}\b|^{rest[0]} =", module.read_text(), re.M))
    return False


def test_every_file_a_generated_file_names_exists(project):
    paths = tree(project)
    top_level = {path.name for path in project.iterdir()}
    unresolved = []
    for source in text_files(project):
        for line_number, line in enumerate(source.read_text(errors="ignore").splitlines(), start=1):
            for reference in path_references(line, top_level):
                if not resolves(reference, source, project, paths):
                    unresolved.append(f"{source.relative_to(project)}:{line_number}: {reference}")
    assert unresolved == []


def test_every_dotted_path_into_the_project_names_a_module_class_or_function_it_has(project):
    # Not the tests: their task names (tests.record_delivery) look like dotted paths and are not.
    sources = [path for path in text_files(project) if path.relative_to(project).parts[0] != "tests"]
    unresolved = [
        f"{source.relative_to(project)}: {dotted}"
        for source in sources
        for dotted in MODULE_PATH.findall(source.read_text(errors="ignore"))
        if not module_resolves(dotted, project) and not any(name in dotted.split(".") for name in HOW_TO_NAMES)
    ]
    assert unresolved == []


def test_every_practice_number_is_defined_in_the_projects_own_practices(project):
    practices = project / "docs" / "practices.md"
    defined = set(PRACTICE_NUMBER.findall(" ".join(headings(practices)))) if practices.exists() else set()
    undefined = [
        f"{source.relative_to(project)}: {number}"
        for source in text_files(project)
        for number in PRACTICE_NUMBER.findall(source.read_text(errors="ignore"))
        if number not in defined
    ]
    assert undefined == []


def test_every_section_a_generated_file_points_at_exists(project):
    missing = []
    for source in text_files(project):
        for document, section in SECTION_REFERENCE.findall(source.read_text(errors="ignore")):
            path = project / ("README.md" if document == "README" else document)
            if not path.exists() or section not in headings(path):
                missing.append(f"{source.relative_to(project)}: {document} {section!r}")
    assert missing == []


def test_nothing_cites_the_templates_own_specification(project):
    cites = [
        str(path.relative_to(project))
        for path in text_files(project)
        if "PRACTICES.md" in path.read_text(errors="ignore")
    ]
    assert cites == []

"""Which upstream methods the patches override, and whether their source changed in another upstream version.

A patch (``{{ cookiecutter.project_slug }}/taskqueue/patches/``) subclasses an upstream class and overrides some of
its methods; when upstream rewrites one of those, the patch may silently undo the fix or keep a bug upstream fixed.
This lists every override, found from the classes themselves (a method a project class defines that an upstream
class after it in the MRO defines too: nothing to keep in sync by hand), and compares each overridden method's
source between the version the patches were tested with and another one, with the diff.

    uv run python -m tools.upstream.overrides                 # the overrides, against the installed versions
    uv run python -m tools.upstream.overrides kombu==5.6.0    # and a version's sources (from the package index)

Exits 1 if an overridden method differs (or is gone) in a version under test. ``make upstream-check``
(tools/upstream/check.py) prints the same report, against the versions the patches were tested with.
"""

import ast
import difflib
import importlib
import inspect
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path

from tools.upstream import find_uv

PACKAGE = "{{ cookiecutter.project_slug }}"
# The project's classes that replace upstream ones (a module that is not generated for this project is skipped).
PATCHED_CLASSES = [
{%- if cookiecutter.broker == "redis" %}
    f"{PACKAGE}.taskqueue.patches.kombu:Channel",
    f"{PACKAGE}.taskqueue.patches.kombu:SentinelChannel",
    f"{PACKAGE}.taskqueue.patches.kombu:QoS",
    f"{PACKAGE}.taskqueue.patches.kombu:Transport",
    f"{PACKAGE}.taskqueue.patches.kombu:SentinelTransport",
{%- endif %}
    f"{PACKAGE}.taskqueue.patches.celery_worker:TimeLimitRequest",
    f"{PACKAGE}.taskqueue.patches.celery_worker:ThreadsTaskPool",
    f"{PACKAGE}.taskqueue.patches.django_celery_beat:HeartbeatDatabaseScheduler",
    f"{PACKAGE}.taskqueue.patches.django_celery_results:DatabaseBackend",
]


@dataclass(frozen=True, order=True)
class Override:
    distribution: str  # e.g. "kombu"
    module: str  # the upstream module that defines the method, e.g. "kombu.transport.redis"
    cls: str  # its class there, e.g. "Channel"
    method: str
    by: str  # the project's class, e.g. "{{ cookiecutter.project_slug }}.taskqueue.patches.celery_worker:TimeLimitRequest"

    @property
    def upstream(self) -> str:
        return f"{self.module}.{self.cls}.{self.method}"


def load(path: str) -> type | None:
    module, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None  # a patch this project was generated without
        raise


def overrides() -> list[Override]:
    """Every upstream method a project class overrides, once per (upstream class, method)."""
    distributions = packages_distributions()
    found: set[Override] = set()
    for path in PATCHED_CLASSES:
        cls = load(path)
        if cls is None:
            continue
        mro = cls.__mro__
        for index, own in enumerate(mro):
            if not own.__module__.startswith(f"{PACKAGE}."):
                continue
            for name, value in vars(own).items():
                if not inspect.isfunction(value) or name in {"__init_subclass__"}:
                    continue
                upstream = next(
                    (
                        base
                        for base in mro[index + 1 :]
                        if name in vars(base) and not base.__module__.startswith(PACKAGE)
                    ),
                    None,
                )
                if upstream is None or upstream is object:
                    continue
                top = upstream.__module__.split(".")[0]
                distribution = distributions.get(top, [top])[0].lower()
                found.add(
                    Override(
                        distribution,
                        upstream.__module__,
                        upstream.__qualname__,
                        name,
                        f"{own.__module__}:{own.__qualname__}",
                    )
                )
    return sorted(found)


def method_source(root: Path, module: str, cls: str, method: str) -> str | None:
    """The source of ``cls.method`` in ``module`` under ``root`` (a site-packages-like tree), None if it is gone."""
    path = root.joinpath(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    if not path.exists():
        return None
    source = path.read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == cls.split(".")[-1]:
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name == method:
                    return ast.get_source_segment(source, item, padded=True)
    return None


def installed_root(module: str) -> Path:
    """The site-packages directory the installed ``module`` comes from."""
    top = importlib.import_module(module.split(".")[0])
    return Path(inspect.getfile(top)).parents[1]


def fetch(requirement: str, into: Path) -> Path:
    """Install ``requirement`` (without dependencies) into a directory of its own, for its sources only."""
    target = into / "sources" / requirement.replace("==", "-")
    if (target / ".complete").exists():
        return target
    uv = find_uv()
    if uv is None:
        raise SystemExit("uv is needed to fetch another version's sources: https://docs.astral.sh/uv/")
    shutil.rmtree(target, ignore_errors=True)
    result = subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--python",
            sys.executable,
            "--target",
            str(target),
            requirement,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if result.returncode != 0:
        raise SystemExit(f"Could not fetch {requirement}: {result.stderr.strip()}")
    (target / ".complete").touch()
    return target


def sources(requirement: str, scratch: Path) -> Path:
    """A tree holding ``name==version``'s modules: the installed one if it is that version, else fetched."""
    name, _, wanted = requirement.partition("==")
    try:
        if version(name) == wanted:
            return installed_root(importlib.import_module(name.replace("-", "_")).__name__)
    except (PackageNotFoundError, ModuleNotFoundError):
        pass
    return fetch(requirement, scratch)


def compare(found: list[Override], baseline: dict[str, str], under_test: Path, scratch: Path) -> int:
    """Print each override's source at ``baseline`` (name: ``name==version``) against the tree ``under_test``.

    Returns how many differ or are gone, each printed with its diff.
    """
    differing = 0
    for name in sorted({override.distribution for override in found}):
        requirement = baseline.get(name)
        if requirement is None:
            continue
        tested = sources(requirement, scratch)
        for override in (override for override in found if override.distribution == name):
            old = method_source(tested, override.module, override.cls, override.method)
            new = method_source(under_test, override.module, override.cls, override.method)
            if new is None:
                differing += 1
                print(f"  GONE     {override.upstream} (overridden by {override.by})")
            elif new != old:
                differing += 1
                print(f"  DIFFERS  {override.upstream} (overridden by {override.by})")
                diff = difflib.unified_diff(
                    (old or "").splitlines(), new.splitlines(), requirement, "under test", lineterm=""
                )
                print("\n".join(f"      {line}" for line in diff))
            else:
                print(f"  same     {override.upstream}")
    return differing


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    found = overrides()
    for override in found:
        print(f"{override.upstream}  <- {override.by}")
    differing = 0
    with tempfile.TemporaryDirectory(prefix="upstream-sources-") as scratch:
        for requirement in argv:
            name = requirement.split("==")[0].lower()
            print(f"installed {name} {version(name)} -> {requirement}:")
            other = fetch(requirement, Path(scratch))
            differing += compare(found, {name: f"{name}=={version(name)}"}, other, Path(scratch))
    if differing:
        print(f"{differing} overridden method(s) differ: re-read them against the patches (docs/patches.md).")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

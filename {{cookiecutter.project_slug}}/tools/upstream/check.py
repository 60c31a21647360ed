"""The upstream canary: upstream's own test suites run against this project's patched classes, and every method a
patch overrides compared between the version the patches were tested with and the version under test.

    make upstream-check                    # the installed versions (uv.lock's)
    make upstream-check KOMBU=5.8.0        # a chosen version (CELERY=, BEAT=, RESULTS= likewise), caps ignored
    make upstream-check LATEST=1           # the newest release of each, resolved in a throwaway environment
    make upstream-check ONLY=kombu-unit    # some suites only (comma-separated names from SUITES)

The suites (kombu's Redis transport tests, unit and against a real redis-server; django-celery-results' database
backend tests on PostgreSQL; django-celery-beat's scheduler tests) come from the sdists of the versions under
test and run in a virtualenv of their own under .upstream-check/ (the project's .venv and uv.lock are not
touched), with the project's classes in place of upstream's (plugin.py). Every test that does not simply pass is
listed with its reason in exclusions.toml: an ``xfail`` one must fail, a ``deselect`` one does not run; any other
failure, error or skip fails the check, and so does a listed test that upstream no longer has.

Needs uv and redis-server on PATH, and for the results suite a PostgreSQL: DATABASE_URL=postgres://... (its user
creates and drops the test database). Exits 0 when every suite holds and no overridden method changed, 1
otherwise, 2 when it cannot run. docs/patches.md says what to do with the report.
"""

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tools.redis_server import RedisServer
from tools.upstream import find_uv, overrides

HERE = Path(__file__).resolve().parent
PROJECT_DIR = HERE.parents[1]
EXCLUSIONS = HERE / "exclusions.toml"
PACKAGE = overrides.PACKAGE
# make upstream-check's variables, and the distributions they choose a version of: the capped ones in pyproject.toml.
CANARY = {"KOMBU": "kombu", "CELERY": "celery", "BEAT": "django-celery-beat", "RESULTS": "django-celery-results"}
# What the upstream test trees import beyond the project's own dependencies (their test requirements files, without
# the linters, coverage and pretty-printers), and why each is here.
TEST_REQUIREMENTS = [
    "pytest>=8.3,<9",  # django-celery-beat's test requirements: pytest 9 refuses its marks on fixtures
    "pytest-django>=4.9",  # results' and beat's suites are Django tests
    "pytest-timeout",  # beat's test requirements
    "ephem",  # beat's solar schedules
    "hypothesis<7",  # kombu's test requirements
    "pytest-freezer",  # kombu's test requirements (freezer fixture)
    "pytz",  # results' test requirements
]
# Not pytest-rerunfailures (in kombu's integration test requirements): a flaky test is a failing test, so its
# flaky(reruns=5) marks stay inert and a test that fails once fails here.
SUITE_TIMEOUT = 900
KOMBU_CLASSES = ["kombu.transport.redis.Transport", "kombu.transport.redis.Channel", "kombu.transport.redis.QoS"]
# The transport option the project sets (config/settings/base.py CELERY_BROKER_TRANSPORT_OPTIONS) that switches its
# atomic receive on: one Redis list per queue. Without it kombu's BRPOP path runs.
PROJECT_TRANSPORT_OPTIONS = {"priority_steps": [0]}


class CannotRun(Exception):
    """Something the check needs is missing: exit 2 with this message."""


@dataclass
class Suite:
    name: str  # its section in exclusions.toml
    distribution: str  # the package whose sdist holds the tests
    substitute: str  # plugin.py's UPSTREAM_SUITE
    paths: list[str]
    settings: str | None = None  # DJANGO_SETTINGS_MODULE (settings_*.py here)
    shards: int = 1  # concurrent processes, each with its own redis-server (the tests mostly sleep)
    substituted: list[str] = field(default_factory=list)  # upstream names the report must show rebound
    transport_options: dict = field(default_factory=dict)  # kombu Connection defaults (plugin.py)
    patch: str = "kombu"  # the patch module (taskqueue/patches/) it tests: a project without it skips the suite


SUITES = [
    # One process, in upstream's order: split, test_global_keyprefix_pubsub fails (its mock client's class-level
    # state comes from earlier tests).
    Suite("kombu-unit", "kombu", "kombu", ["t/unit/transport/test_redis.py"], substituted=KOMBU_CLASSES),
    Suite(
        "kombu-integration",
        "kombu",
        "kombu",
        ["t/integration/test_redis.py", "t/integration/test_redis_brpop_qos.py"],
        shards=6,
        substituted=KOMBU_CLASSES,
    ),
    Suite(
        "kombu-integration-project-options",
        "kombu",
        "kombu",
        ["t/integration/test_redis.py", "t/integration/test_redis_brpop_qos.py"],
        shards=6,
        substituted=KOMBU_CLASSES,
        transport_options=PROJECT_TRANSPORT_OPTIONS,
    ),
    Suite(
        "results",
        "django-celery-results",
        "results",
        ["t/unit/backends/test_database.py"],
        settings="settings_results",
        substituted=["django_celery_results.backends.database.DatabaseBackend"],
        patch="django_celery_results",
    ),
    Suite(
        "beat",
        "django-celery-beat",
        "beat",
        ["t/unit/test_schedulers.py"],
        settings="settings_beat",
        shards=2,
        substituted=["django_celery_beat.schedulers.DatabaseScheduler"],
        patch="django_celery_beat",
    ),
]


def project_suites() -> list[Suite]:
    """The suites of the patches this project has (no django-celery-results patch without its result backend)."""
    patches = PROJECT_DIR / PACKAGE / "taskqueue" / "patches"
    return [suite for suite in SUITES if (patches / f"{suite.patch}.py").exists()]


def uv() -> str:
    found = find_uv()
    if not found:
        raise CannotRun("uv is needed to build the canary's virtualenv: https://docs.astral.sh/uv/")
    return found


def run(argv: list[str], what: str, timeout: float = 900, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout, **kwargs)
    if result.returncode != 0:
        raise CannotRun(f"{what} failed ({' '.join(argv[:4])} ...):\n{result.stdout[-2000:]}{result.stderr[-3000:]}")
    return result


def installed_versions(python: str) -> dict[str, str]:
    """The versions of the canary's packages that ``python`` has."""
    code = (
        "import json, sys; from importlib.metadata import PackageNotFoundError, version\n"
        "found = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try: found[name] = version(name)\n"
        "    except PackageNotFoundError: pass\n"
        "print(json.dumps(found))"
    )
    result = run([python, "-c", code, *CANARY.values()], "reading the installed versions", timeout=120)
    return json.loads(result.stdout)


def declared() -> list[str]:
    """The canary's packages this project depends on (pyproject.toml; django-celery-results only with its backend)."""
    dependencies = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {
        re.split(r"[^A-Za-z0-9._-]", dependency, maxsplit=1)[0].lower().replace("_", "-")
        for dependency in dependencies
    }
    return [name for name in CANARY.values() if name in names]


def tested_with() -> dict[str, str]:
    """The versions the patches and exclusions.toml were last checked against ([tested-with] there)."""
    return dict(tomllib.loads(EXCLUSIONS.read_text())["tested-with"])


def build_venv(cache: Path, chosen: dict[str, str], latest: list[str]) -> tuple[Path, dict[str, str]]:
    """A virtualenv with the project's dependencies, the upstream test requirements and the versions under test.

    ``chosen`` pins distributions, past the project's caps if need be (uv's overrides); those in ``latest`` resolve
    to their newest releases. The other dependencies resolve within pyproject.toml's ranges. The resolved
    set is written beside it (resolved.txt: its throwaway lock).
    """
    pins = [f"{name}=={version}" for name, version in sorted(chosen.items())]
    if latest:
        pins += [f"{name}>=0" for name in latest]
    key = "\n".join([(PROJECT_DIR / "pyproject.toml").read_text(), *TEST_REQUIREMENTS, *pins, sys.version])
    venv = cache / f"venv-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    python = venv / "bin" / "python"
    for other in cache.glob("venv-*"):  # one at a time: uv's cache makes another quick to build again
        if other != venv:
            shutil.rmtree(other, ignore_errors=True)
    if latest or not (venv / ".complete").exists():  # the newest releases change: resolve again each time
        shutil.rmtree(venv, ignore_errors=True)
        # --seed: pip, to download the sdists (uv downloads wheels only).
        run([uv(), "venv", "--quiet", "--seed", "--python", sys.executable, str(venv)], "uv venv", timeout=120)
        argv = [uv(), "pip", "install", "--quiet", "--python", str(python), "-r", str(PROJECT_DIR / "pyproject.toml")]
        if pins:
            overrides_file = cache / "overrides.txt"
            overrides_file.write_text("\n".join(pins) + "\n")
            argv += ["--override", str(overrides_file)]
        run([*argv, *TEST_REQUIREMENTS], "installing the canary's virtualenv")
        lock = run([uv(), "pip", "freeze", "--python", str(python)], "uv pip freeze", timeout=120).stdout
        (venv / "resolved.txt").write_text(lock)
        (venv / ".complete").touch()
    return venv, installed_versions(str(python))


def fetch_sdist(python: Path, cache: Path, distribution: str, version: str) -> Path:
    """The unpacked sdist of ``distribution==version`` (its t/ test tree), downloaded once into the cache."""
    stem = f"{distribution.replace('-', '_')}-{version}"
    unpacked = cache / "sdists" / stem
    if (unpacked / ".complete").exists():
        return unpacked
    with tempfile.TemporaryDirectory(prefix="sdist-") as download:
        run(
            [str(python), "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             "--dest", download, f"{distribution}=={version}"],
            f"downloading the sdist of {distribution}=={version} (the upstream tests come from it)",
            timeout=300,
        )  # fmt: skip
        archives = list(Path(download).glob("*.tar.gz"))
        if len(archives) != 1:
            raise CannotRun(f"pip downloaded {archives} for {distribution}=={version}, expected one .tar.gz")
        shutil.rmtree(unpacked, ignore_errors=True)
        with tarfile.open(archives[0]) as archive:
            archive.extractall(cache / "sdists", filter="data")
    if not (unpacked / "t").is_dir():
        raise CannotRun(f"the sdist of {distribution}=={version} has no t/ test tree")
    (unpacked / ".complete").touch()
    return unpacked


def postgres_url(suites: list[Suite]) -> str:
    if not any(suite.name == "results" for suite in suites):
        return ""
    url = os.environ.get("UPSTREAM_DATABASE_URL") or os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise CannotRun(
            "the results suite needs PostgreSQL (the project's result backend locks rows, which SQLite ignores): "
            f"set DATABASE_URL to a postgres:// URL whose user may create databases (it is {url or 'unset'}), "
            "or leave that suite out: ONLY=kombu-unit,kombu-integration,kombu-integration-project-options,beat"
        )
    import psycopg

    try:  # a clear error in seconds rather than a suite of connection errors
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.Error as exc:
        raise CannotRun(f"the results suite's PostgreSQL ({url.split('@')[-1]}) does not answer: {exc}") from exc
    return url


def command_calls(server: RedisServer) -> Counter[str]:
    """Calls per Redis command so far (INFO commandstats): which receive path the transport took."""
    stats = redis.Redis.from_url(server.url).info("commandstats")
    return Counter({name.removeprefix("cmdstat_").upper(): int(value["calls"]) for name, value in stats.items()})


@dataclass
class Run:
    suite: Suite
    shard: int
    process: subprocess.Popen
    report: Path
    output: Path
    server: RedisServer


def run_suites(
    suites: list[Suite], python: Path, sdists: dict[str, Path], database: str, workdir: Path
) -> tuple[list[Run], dict[str, Counter[str]], float]:
    """Every shard of every suite at once, each on a redis-server of its own; their reports, Redis calls, wall time."""
    runs: list[Run] = []
    started = time.monotonic()
    try:
        for suite in suites:
            for shard in range(suite.shards):
                directory = workdir / f"{suite.name}-{shard}"
                directory.mkdir(parents=True)
                server = RedisServer().start()
                env = {
                    **os.environ,
                    "PYTHONPATH": os.pathsep.join([str(HERE), str(PROJECT_DIR), str(sdists[suite.distribution])]),
                    "UPSTREAM_SUITE": suite.substitute,
                    "UPSTREAM_PROJECT": PACKAGE,
                    "UPSTREAM_EXCLUSIONS": str(EXCLUSIONS),
                    "UPSTREAM_SECTION": suite.name,
                    "UPSTREAM_REPORT": str(directory / "report.json"),
                    "UPSTREAM_SHARD": f"{shard}/{suite.shards}",
                    "UPSTREAM_TRANSPORT_OPTIONS": json.dumps(suite.transport_options),
                    # kombu's integration tests read these (its CI's docker service names).
                    "REDIS_HOST": "127.0.0.1",
                    "REDIS_6379_TCP": str(server.port),
                    "UPSTREAM_REDIS_URL": server.url,
                    "UPSTREAM_HEARTBEAT_FILE": str(directory / "beat-heartbeat"),
                    "UPSTREAM_DATABASE_URL": database,
                    "UPSTREAM_TEST_DATABASE": f"test_upstream_{suite.substitute}_{shard}_{os.getpid()}",
                }
                env.pop("DJANGO_SETTINGS_MODULE", None)
                argv = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "plugin", "-W", "ignore",
                        "--rootdir", str(sdists[suite.distribution]), *suite.paths]  # fmt: skip
                if suite.settings:
                    argv += ["--ds", suite.settings]
                output = directory / "output.txt"
                with output.open("w") as log:
                    process = subprocess.Popen(
                        argv, cwd=sdists[suite.distribution], env=env, stdout=log, stderr=subprocess.STDOUT
                    )
                runs.append(Run(suite, shard, process, directory / "report.json", output, server))
        deadline = time.monotonic() + SUITE_TIMEOUT
        for each in runs:
            try:
                each.process.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{each.suite.name} shard {each.shard} still running after {SUITE_TIMEOUT} s: stopped")
    finally:
        calls: dict[str, Counter[str]] = {suite.name: Counter() for suite in suites}
        for each in runs:
            if each.process.poll() is None:
                each.process.kill()
                each.process.wait()
            calls[each.suite.name].update(command_calls(each.server))
            each.server.stop(remove_data=True)
    return runs, calls, time.monotonic() - started


def evaluate(suite: Suite, reports: list[dict | None], listed: dict[str, dict[str, str]]) -> tuple[str, list[str]]:
    """One suite's line and its problems, from its shards' reports (None: a shard wrote none) and its exclusions."""
    problems: list[str] = []
    outcomes: dict[str, str] = {}
    collected: set[str] = set()  # every shard collects the whole suite
    instances: Counter[str] = Counter()
    seconds = 0.0
    for shard, data in enumerate(reports):
        if data is None:
            problems.append(f"{suite.name} shard {shard} wrote no report (its output is in the work directory)")
            continue
        outcomes.update(data["outcomes"])
        collected.update(data["collected"])
        instances.update(data["instances"])
        seconds = max(seconds, data["seconds"])
        missing = [name for name in suite.substituted if name not in data["substituted"]]
        wrong = {name: target for name, target in data["substituted"].items() if not target.startswith(f"{PACKAGE}.")}
        if missing or wrong:
            problems.append(f"{suite.name} shard {shard}: not substituted: {missing or wrong}")
        if data["transport_options"] != suite.transport_options:
            problems.append(f"{suite.name} shard {shard}: transport options {data['transport_options']}")
    if not collected:
        problems.append(f"{suite.name}: no test collected")
    stale = sorted(set(listed) - collected)
    if stale and collected:
        problems.append(f"{suite.name}: exclusions.toml lists tests upstream no longer has: {stale}")
    for nodeid, outcome in sorted(outcomes.items()):
        expected = "xfailed" if listed.get(nodeid, {}).get("how") == "xfail" else "passed"
        if outcome != expected:
            problems.append(f"{suite.name}: {nodeid} {outcome}, expected {expected}")
    deselected = sorted(nodeid for nodeid, entry in listed.items() if entry["how"] == "deselect")
    ran = [nodeid for nodeid in deselected if nodeid in outcomes]
    if ran:
        problems.append(f"{suite.name}: deselected tests ran: {ran}")
    passed = sum(outcome == "passed" for outcome in outcomes.values())
    xfailed = sum(outcome == "xfailed" for outcome in outcomes.values())
    absent = sorted(collected - set(outcomes) - set(deselected))
    if absent:
        problems.append(f"{suite.name}: {len(absent)} collected tests have no outcome (a shard stopped early?)")
    project_instances = sum(count for name, count in instances.items() if name.startswith(f"{PACKAGE}."))
    if collected and not project_instances:
        problems.append(f"{suite.name}: the project's classes were never instantiated: {dict(instances)}")
    line = (
        f"{passed} passed, {xfailed} xfailed (listed), {len(deselected)} deselected (listed), of {len(collected)}; "
        f"{project_instances} instances of the project's classes; {seconds:.0f} s"
    )
    return line, problems


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make upstream-check", description=__doc__.split("\n\n")[0])
    parser.add_argument("requirements", nargs="*", metavar="NAME==VERSION", help="e.g. kombu==5.8.0")
    parser.add_argument("--latest", action="store_true", help="the newest release of each capped package")
    parser.add_argument("--only", default="", help="comma-separated suite names")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("UPSTREAM_CHECK_CACHE", ".upstream-check")))
    parser.add_argument(
        "--report", type=Path, default=os.environ.get("UPSTREAM_CHECK_REPORT"), help="also write the outcome as JSON"
    )
    arguments = parser.parse_args(argv)
    for requirement in arguments.requirements:
        name, _, version = requirement.partition("==")
        if name not in CANARY.values() or not version:
            parser.error(f"{requirement!r}: expected NAME==VERSION with NAME one of {', '.join(CANARY.values())}")
    return arguments


def check(arguments: argparse.Namespace) -> dict:
    suites = project_suites()
    if arguments.only:
        names = {name.strip() for name in arguments.only.split(",") if name.strip()}
        unknown = names - {suite.name for suite in suites}
        if unknown:
            raise CannotRun(f"ONLY: no suite {sorted(unknown)} here; this project's: {[s.name for s in suites]}")
        suites = [suite for suite in suites if suite.name in names]
    database = postgres_url(suites)
    cache = arguments.cache.resolve()
    cache.mkdir(parents=True, exist_ok=True)
    chosen = dict(requirement.split("==", 1) for requirement in arguments.requirements)
    baseline = tested_with()
    packages = declared()
    installed = installed_versions(sys.executable)
    missing = [name for name in packages if name not in installed]
    if missing:
        raise CannotRun(f"{', '.join(missing)} not installed here: `uv sync` first")
    unused = sorted(set(chosen) - set(packages))
    if unused:
        raise CannotRun(f"this project does not install {', '.join(unused)}: nothing of it to check")
    if not arguments.latest:  # the others at the versions installed here (uv.lock's), not the newest under the caps
        chosen = {name: chosen.get(name, installed[name]) for name in packages}
    latest = [name for name in packages if name not in chosen] if arguments.latest else []
    venv, under_test = build_venv(cache, chosen, latest)
    python = venv / "bin" / "python"
    # For the project's own suite with the same releases (the scheduled CI job installs these in its environment).
    (cache / "under-test.txt").write_text("".join(f"{name}=={under_test[name]}\n" for name in packages))
    print("versions (tested with -> under test):")
    for name in packages:
        mark = "" if baseline[name] == under_test[name] else "   CHANGED"
        print(f"  {name:24} {baseline[name]:>8} -> {under_test[name]:<8} (installed here: {installed[name]}){mark}")
    print(f"  the canary's environment: {venv} (resolved.txt there lists every package)")

    # The overridden methods, tested-with sources against the sources under test.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    found = overrides.overrides()
    print(f"\nmethods the patches override ({len(found)}), their source tested with -> under test:")
    differing = overrides.compare(
        found, {name: f"{name}=={baseline[name]}" for name in packages}, venv_site_packages(python), cache
    )

    sdists = {suite.distribution: fetch_sdist(python, cache, suite.distribution, under_test[suite.distribution])
              for suite in suites}  # fmt: skip
    exclusions = tomllib.loads(EXCLUSIONS.read_text())
    with tempfile.TemporaryDirectory(prefix="upstream-check-", dir=cache) as workdir:
        runs, calls, wall = run_suites(suites, python, sdists, database, Path(workdir))
        outputs = cache / "output"
        shutil.rmtree(outputs, ignore_errors=True)
        outputs.mkdir()
        for each in runs:
            shutil.copy(each.output, outputs / f"{each.suite.name}-{each.shard}.txt")
        print(f"\nupstream suites with the project's classes (concurrently, {wall:.0f} s; output in {outputs}):")
        problems: list[str] = []
        summary: dict[str, dict] = {}
        for suite in suites:
            reports = [json.loads(r.report.read_text()) if r.report.exists() else None
                       for r in runs if r.suite is suite]  # fmt: skip
            line, found_problems = evaluate(suite, reports, exclusions.get(suite.name, {}))
            problems += found_problems
            summary[suite.name] = {"line": line, "problems": found_problems, "calls": dict(calls[suite.name])}
            print(f"  {suite.name:34} {suite.distribution}=={under_test[suite.distribution]}: {line}")
            if "integration" in suite.name:
                receive = ", ".join(f"{name} {calls[suite.name][name]}" for name in ("BRPOP", "BLMOVE", "EVALSHA"))
                print(f"  {'':34} Redis calls: {receive}")
    for problem in problems:
        print(f"FAILED {problem}")
    changed = {name: (baseline[name], under_test[name]) for name in packages if baseline[name] != under_test[name]}
    if differing or problems:
        message = (
            f"upstream-check FAILED: {differing} overridden method(s) differ or are gone, {len(problems)} suite "
            f"problem(s); changed: {', '.join(f'{n} {a} -> {b}' for n, (a, b) in changed.items()) or 'nothing'}. "
            "docs/patches.md says what to do."
        )
        print(f"\n{message}")
        if os.environ.get("GITHUB_ACTIONS") == "true":  # the same line as an annotation on the run's summary
            print(f"::error title=upstream-check::{message}")
    else:
        print("\nupstream-check passed: every suite holds and no overridden method changed.")
    return {"versions": under_test, "tested_with": baseline, "changed": changed, "differing": differing,
            "problems": problems, "suites": summary, "ok": not (differing or problems)}  # fmt: skip


def venv_site_packages(python: Path) -> Path:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return Path(run([str(python), "-c", code], "finding site-packages", timeout=60).stdout.strip())


def main(argv: list[str]) -> int:
    arguments = parse(argv)
    arguments.cache.mkdir(parents=True, exist_ok=True)
    try:
        with (arguments.cache / ".lock").open("w") as lock:
            # One check at a time per cache: each keeps one virtualenv there, and removes any other.
            fcntl.flock(lock, fcntl.LOCK_EX)
            outcome = check(arguments)
    except CannotRun as exc:
        print(f"upstream-check cannot run: {exc}", file=sys.stderr)
        outcome = {"ok": False, "cannot_run": str(exc)}
        code = 2
    else:
        code = 0 if outcome["ok"] else 1
    if arguments.report:
        arguments.report.write_text(json.dumps(outcome, indent=1))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

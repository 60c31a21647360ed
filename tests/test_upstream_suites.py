"""Upstream test suites with the generated project's classes substituted (issue #13 item 13).

kombu's Redis transport tests (unit, and integration against a real redis-server), django-celery-results'
database backend tests (on a real PostgreSQL) and django-celery-beat's scheduler tests run from the sdists of
exactly the versions the generated project installs, with the project's ``Transport``/``Channel``/``QoS``,
``DatabaseBackend`` and ``HeartbeatDatabaseScheduler`` in place of upstream's (tests/upstream/plugin.py).

Every test not run as a plain pass is listed in tests/upstream/exclusions.toml with its reason: ``xfail`` ones
must fail (strictly: one that starts passing fails this test, so the list stays exact), ``deselect`` ones do not
run. Any other failure, error or skip fails this test. Run it alone: ``uv run --group test pytest -m upstream``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
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

import pytest
from bakery import ALL_DEPENDENCIES_CONTEXT, CACHE_DIR, PROJECT_PYTHON, free_port, project_env, python_interpreter, uv

pytestmark = pytest.mark.upstream

HERE = Path(__file__).resolve().parent / "upstream"
EXCLUSIONS = HERE / "exclusions.toml"
SDIST_DIR = CACHE_DIR / "upstream-sdists"
# Each run's output is copied here (suite-shard.txt), to read after pytest has removed its tmp dirs.
ARTIFACTS = Path(os.environ.get("TEMPLATE_TEST_ARTIFACTS", CACHE_DIR / "artifacts")) / "upstream-suites"
# What the upstream test trees import beyond the generated project's own dependencies (their requirements/test*.txt,
# without the linters, coverage and pretty-printers), and why each is here.
TEST_REQUIREMENTS = [
    "pytest>=8.3,<9",  # django-celery-beat's requirements/test.txt: pytest 9 refuses its marks on fixtures
    "pytest-django>=4.9",  # results' and beat's suites are Django tests
    "pytest-timeout",  # beat's test.txt
    "ephem",  # beat's solar schedules
    "hypothesis<7",  # kombu's test.txt
    "pytest-freezer",  # kombu's test.txt (freezer fixture)
    "pytz",  # results' test.txt
]
# Not pytest-rerunfailures (kombu's test-integration.txt): a flaky test is a failing test, so its flaky(reruns=5)
# marks stay inert and a test that fails once fails here.


@dataclass
class Suite:
    name: str  # the section in exclusions.toml
    distribution: str  # the installed package whose sdist holds the tests
    substitute: str  # plugin.py's UPSTREAM_SUITE
    paths: list[str]
    settings: str | None = None  # DJANGO_SETTINGS_MODULE (tests/upstream/settings_*.py)
    shards: int = 1  # concurrent processes, each with its own redis-server (the tests mostly sleep)
    substituted: list[str] = field(default_factory=list)  # upstream names the report must show rebound
    transport_options: dict = field(default_factory=dict)  # kombu Connection defaults (plugin.py)


SUITES = [
    Suite(
        "kombu-unit",
        "kombu",
        "kombu",
        ["t/unit/transport/test_redis.py"],
        # One process, in upstream's order: split, test_global_keyprefix_pubsub fails (its mock client's
        # class-level state comes from earlier tests).
        substituted=["kombu.transport.redis.Transport", "kombu.transport.redis.Channel", "kombu.transport.redis.QoS"],
    ),
    Suite(
        "kombu-integration",
        "kombu",
        "kombu",
        ["t/integration/test_redis.py", "t/integration/test_redis_brpop_qos.py"],
        shards=6,
        substituted=["kombu.transport.redis.Transport", "kombu.transport.redis.Channel", "kombu.transport.redis.QoS"],
    ),
    # Again with the transport option the project sets (config/settings/base.py CELERY_BROKER_TRANSPORT_OPTIONS)
    # that switches its atomic receive on: one Redis list per queue. Without it kombu's BRPOP path runs.
    Suite(
        "kombu-integration-project-options",
        "kombu",
        "kombu",
        ["t/integration/test_redis.py", "t/integration/test_redis_brpop_qos.py"],
        shards=6,
        substituted=["kombu.transport.redis.Transport", "kombu.transport.redis.Channel", "kombu.transport.redis.QoS"],
        transport_options={"priority_steps": [0]},
    ),
    Suite(
        "results",
        "django-celery-results",
        "results",
        ["t/unit/backends/test_database.py"],
        settings="settings_results",
        substituted=["django_celery_results.backends.database.DatabaseBackend"],
    ),
    Suite(
        "beat",
        "django-celery-beat",
        "beat",
        ["t/unit/test_schedulers.py"],
        settings="settings_beat",
        shards=2,
        substituted=["django_celery_beat.schedulers.DatabaseScheduler"],
    ),
]


def installed_versions(venv: Path) -> dict[str, str]:
    names = sorted({suite.distribution for suite in SUITES})
    code = (
        "import json, sys; from importlib.metadata import version; "
        "print(json.dumps({name: version(name) for name in sys.argv[1:]}))"
    )
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code, *names], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(result.stdout)


def fetch_sdist(distribution: str, version: str) -> Path:
    """The unpacked sdist of ``distribution==version``, downloaded once into the template test cache."""
    stem = f"{distribution.replace('-', '_')}-{version}"
    unpacked = SDIST_DIR / stem
    SDIST_DIR.mkdir(parents=True, exist_ok=True)
    with (SDIST_DIR / f"{stem}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # pytest-xdist workers share the cache
        if (unpacked / ".complete").exists():
            return unpacked
        download = Path(tempfile.mkdtemp(prefix="sdist-"))
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             "--dest", str(download), f"{distribution}=={version}"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        archives = list(download.glob("*.tar.gz"))
        if result.returncode != 0 or len(archives) != 1:
            pytest.fail(
                f"Could not download the sdist of {distribution}=={version} (the upstream tests come from it): "
                f"is the package index reachable? pip said:\n{result.stdout[-2000:]}{result.stderr[-3000:]}",
                pytrace=False,
            )
        shutil.rmtree(unpacked, ignore_errors=True)
        with tarfile.open(archives[0]) as archive:
            archive.extractall(SDIST_DIR, filter="data")
        shutil.rmtree(download, ignore_errors=True)
        if not (unpacked / "t").is_dir():
            pytest.fail(f"The sdist of {distribution}=={version} has no t/ test tree", pytrace=False)
        (unpacked / ".complete").touch()
        return unpacked


@pytest.fixture(scope="session")
def upstream_venv(template_venv: Path, bake_once) -> Path:
    """The generated project's dependencies plus TEST_REQUIREMENTS, cached by a digest of both."""
    project = bake_once("upstream-deps", **ALL_DEPENDENCIES_CONTEXT)
    pyproject = (project / "pyproject.toml").read_bytes()
    # The project's own Python: the patched classes are tested where they run.
    python = python_interpreter(PROJECT_PYTHON)
    digest = hashlib.sha256(pyproject + "\n".join(TEST_REQUIREMENTS).encode() + python.encode()).hexdigest()
    venv = CACHE_DIR / f"upstream-venv-{digest[:16]}"
    with (CACHE_DIR / f"upstream-venv-{digest[:16]}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / ".complete").exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([uv(), "venv", "--quiet", "--python", python, str(venv)], check=True, timeout=120)
            result = subprocess.run(
                [uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
                 "-r", str(project / "pyproject.toml"), *TEST_REQUIREMENTS],
                capture_output=True, text=True, check=False, timeout=900,
            )  # fmt: skip
            if result.returncode != 0:
                pytest.fail(f"Could not build the upstream suites' virtualenv {venv}:\n{result.stderr[-4000:]}")
            (venv / ".complete").touch()
    return venv


class RedisServer:
    def __init__(self, directory: Path):
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.fail("redis-server is not installed: `apt-get install redis-server` (see .ci/run).", pytrace=False)
        self.port = free_port()
        self.process = subprocess.Popen(
            [executable, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(directory), "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ping = subprocess.run(
                ["redis-cli", "-p", str(self.port), "PING"], capture_output=True, text=True, check=False, timeout=5
            )
            if ping.stdout.strip() == "PONG":
                return
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"redis-server did not answer on port {self.port}", pytrace=False)

    def command_calls(self) -> Counter[str]:
        """Calls per Redis command so far (INFO commandstats): which receive path the transport took."""
        info = subprocess.run(
            ["redis-cli", "-p", str(self.port), "INFO", "commandstats"],
            capture_output=True, text=True, check=False, timeout=10,
        ).stdout  # fmt: skip
        calls: Counter[str] = Counter()
        for line in info.splitlines():
            name, _, stats = line.partition(":")
            if name.startswith("cmdstat_") and stats.startswith("calls="):
                calls[name.removeprefix("cmdstat_").upper()] = int(stats.split(",")[0].removeprefix("calls="))
        return calls

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def test_upstream_suites_pass_with_the_projects_classes(
    bake_once, upstream_venv, template_venv, postgres_url, tmp_path
):
    project = bake_once("defaults")  # result_backend=django-db: all three patch modules
    package = next(path.parents[2].name for path in project.glob("*/taskqueue/patches/django_celery_results.py"))
    versions = installed_versions(template_venv)
    assert versions == installed_versions(upstream_venv), "the upstream venv must hold the project's versions"
    sdists = {name: fetch_sdist(name, version) for name, version in versions.items()}
    exclusions = tomllib.loads(EXCLUSIONS.read_text())
    assert sorted(exclusions) == sorted(suite.name for suite in SUITES)

    servers: list[RedisServer] = []
    runs = []
    started = time.monotonic()
    try:
        for suite in SUITES:
            for shard in range(suite.shards):
                workdir = tmp_path / f"{suite.name}-{shard}"
                workdir.mkdir()
                server = RedisServer(workdir)
                servers.append(server)
                report = workdir / "report.json"
                env = project_env(
                    upstream_venv,
                    {
                        "PYTHONPATH": f"{HERE}:{project}:{sdists[suite.distribution]}",
                        "UPSTREAM_SUITE": suite.substitute,
                        "UPSTREAM_PROJECT": package,
                        "UPSTREAM_EXCLUSIONS": str(EXCLUSIONS),
                        "UPSTREAM_SECTION": suite.name,
                        "UPSTREAM_REPORT": str(report),
                        "UPSTREAM_SHARD": f"{shard}/{suite.shards}",
                        "UPSTREAM_TRANSPORT_OPTIONS": json.dumps(suite.transport_options),
                        # kombu's integration tests read these (its CI's docker service names).
                        "REDIS_HOST": "127.0.0.1",
                        "REDIS_6379_TCP": str(server.port),
                        "UPSTREAM_REDIS_URL": f"redis://127.0.0.1:{server.port}/0",
                        "UPSTREAM_HEARTBEAT_FILE": str(workdir / "beat-heartbeat"),
                        "UPSTREAM_DATABASE_URL": postgres_url,
                        "UPSTREAM_TEST_DATABASE": f"test_upstream_{suite.substitute}_{shard}",
                    },
                )
                argv = [str(upstream_venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-p", "plugin", "-W", "ignore", "--rootdir", str(sdists[suite.distribution]),
                        *suite.paths]  # fmt: skip
                if suite.settings:
                    argv += ["--ds", suite.settings]
                log = (workdir / "output.txt").open("w")
                process = subprocess.Popen(
                    argv, cwd=sdists[suite.distribution], env=env, stdout=log, stderr=subprocess.STDOUT
                )
                runs.append((suite, shard, process, report, workdir / "output.txt", server))
        for _suite, _shard, process, _report, _output, _server in runs:
            try:
                process.wait(timeout=600)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        commands = {suite.name: Counter() for suite in SUITES}
        for suite, _shard, process, _report, _output, server in runs:
            if process.poll() is None:
                process.kill()
                process.wait()
            commands[suite.name].update(server.command_calls())
        for server in servers:
            server.stop()
    wall = time.monotonic() - started
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    for suite, shard, _process, _report, output, _server in runs:
        shutil.copy(output, ARTIFACTS / f"{suite.name}-{shard}.txt")

    problems = []
    lines = [f"upstream suites (concurrently, {wall:.0f} s wall):"]
    for suite in SUITES:
        shards = [run for run in runs if run[0] is suite]
        outcomes: dict[str, str] = {}
        collected: set[str] = set()  # every shard collects the whole suite
        instances: Counter[str] = Counter()
        seconds = 0.0
        for _suite, shard, _process, report, output, _server in shards:
            if not report.exists():
                problems.append(f"{suite.name} shard {shard} wrote no report:\n{output.read_text()[-4000:]}")
                continue
            data = json.loads(report.read_text())
            outcomes.update(data["outcomes"])
            collected.update(data["collected"])
            instances.update(data["instances"])
            seconds = max(seconds, data["seconds"])
            missing = [name for name in suite.substituted if name not in data["substituted"]]
            wrong = {
                name: target for name, target in data["substituted"].items() if not target.startswith(f"{package}.")
            }
            if data["transport_options"] != suite.transport_options:
                problems.append(f"{suite.name} shard {shard}: transport options {data['transport_options']}")
            if missing or wrong:
                problems.append(f"{suite.name} shard {shard}: not substituted: {missing or wrong}")
        listed = exclusions[suite.name]
        stale = sorted(set(listed) - set(collected))
        if stale:
            problems.append(f"{suite.name}: exclusions.toml lists tests upstream does not have: {stale}")
        for nodeid, outcome in sorted(outcomes.items()):
            expected = "xfailed" if listed.get(nodeid, {}).get("how") == "xfail" else "passed"
            if outcome != expected:
                problems.append(f"{suite.name}: {nodeid} {outcome}, expected {expected} (output in {ARTIFACTS})")
        deselected = sorted(nodeid for nodeid, entry in listed.items() if entry["how"] == "deselect")
        ran_deselected = [nodeid for nodeid in deselected if nodeid in outcomes]
        if ran_deselected:
            problems.append(f"{suite.name}: deselected tests ran: {ran_deselected}")
        passed = sum(outcome == "passed" for outcome in outcomes.values())
        xfailed = sum(outcome == "xfailed" for outcome in outcomes.values())
        if collected and passed + xfailed + len(deselected) != len(collected):
            problems.append(f"{suite.name}: {len(collected)} collected, {passed} passed, {xfailed} xfailed")
        project_instances = sum(count for name, count in instances.items() if name.startswith(f"{package}."))
        if project_instances == 0:
            problems.append(f"{suite.name}: the project's classes were never instantiated: {dict(instances)}")
        lines.append(
            f"  {suite.name:34} {suite.distribution}=={versions[suite.distribution]}: {passed} passed, "
            f"{xfailed} xfailed (listed), {len(deselected)} deselected (listed), of {len(collected)}; "
            f"{project_instances} instances of the project's classes; {seconds:.0f} s"
        )
        if "integration" in suite.name:
            receive = ", ".join(f"{name} {commands[suite.name][name]}" for name in ("BRPOP", "BLMOVE", "EVALSHA"))
            lines.append(f"  {'':34} Redis calls: {receive}")
    print("\n".join(lines))
    assert not problems, "\n".join(problems)

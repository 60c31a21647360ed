"""The generated project's images and compose stacks, run for real on a Docker engine (`pytest -m containers`).

For the default bake, the all-off bake and a RabbitMQ bake: every Dockerfile target builds; the production image
runs as a non-root user without tests, tools or env files; `docker-compose.yml` and then
`docker-compose.production.yml` come up with every long-running service healthy within HEALTH_BUDGET, answer
/healthz/, run one task through each queue's worker container, guard Flower with basic auth, hold the beat lock,
catch local mail, redirect production's plain HTTP to https, and log no ERROR line or traceback; `down -v` at the
end. In the RabbitMQ bake the node lists the project's queues as quorum queues with their delivery limit and
dead-letter exchange. The local stack runs from a git
clone of the bake, as a teammate gets it (the committed local env files are all it needs), and an edited task module
restarts its workers (compose/local/reload.py), whose new task then runs.

On the default bake's production stack, delivery across container deaths, counted in the database with the
generated project's own reliability ledger (tests/reliability/, mounted into the containers by an override file
written here, never shipped): SIGKILL of a worker container's main process mid-task, a `stop` (SIGTERM) with tasks
in flight, and a Redis restart with 500 tasks queued. Then a worker whose event loop stops: its watchdog ends it
and the restart policy brings a fresh container (the time to restart is reported).

The engine and the base images come from tests/docker_engine.py; the figures are reported as ContainerReport
warnings (visible in pytest's summary, also under xdist).
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import textwrap
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bakery import TEMPLATE_DIR, bake_project, free_port, read_env_file
from docker_engine import Engine, docker_engine, ensure_base_images

pytestmark = [pytest.mark.containers, pytest.mark.xdist_group("containers")]

BAKES = {
    "default": {"project_name": "Ct Default"},
    "all-off": {
        "project_name": "Ct Alloff",
        "include_examples": "n",
        "result_backend": "none",
        "use_flower": "n",
        "use_sentry": "n",
        "ci_tool": "none",
    },
    # RabbitMQ as the broker (Redis stays for the cache, results and state), Flower on: both stacks, a task through
    # each queue, the queues quorum queues as declared. The delivery scenarios run on the default bake only.
    "rabbitmq": {
        "project_name": "Ct Rabbit",
        "broker": "rabbitmq",
        "include_examples": "n",
        "use_sentry": "n",
        "ci_tool": "none",
    },
}
HEALTH_BUDGET = 240.0  # seconds for a whole stack to report healthy (measured: about 70 s)
TASK_BUDGET = 60.0
# Production's timeouts shortened for the delivery scenarios, in the relations the system checks require
# (visibility timeout > hard limit + longest countdown, hard limit > soft limit).
SHORT_TIMEOUTS = {
    "CELERY_VISIBILITY_TIMEOUT": "40",
    "CELERY_TASK_TIME_LIMIT": "24",
    "CELERY_TASK_SOFT_TIME_LIMIT": "20",
    "TASK_MAX_COUNTDOWN": "1",
}
# The watchdog's bound in the stuck-worker scenario (production's default is 120 s).
STUCK_AFTER = 20
# The SIGKILL scenario's task waits this long before its effect, well inside the soft limit: the kill must land
# mid-task, after a few `docker exec` round trips of polling (a 4 s hold once finished first on a loaded machine).
DOOMED_HOLD = 14
TASK = "reliability.apply_effect"
ERROR_LINE = re.compile(r"\bERROR\b|Traceback \(most recent call last\)|\bCRITICAL\b")


class ContainerReport(UserWarning):
    """A figure of the container tests: times, sizes, scenario lines."""


def report(line: str) -> None:
    print(line)
    warnings.warn(ContainerReport(line), stacklevel=2)


def compose_command() -> list[str]:
    # Debian 12 ships compose v1 only; the files are written for v1 and v2 alike.
    return ["docker-compose"]


@dataclass
class Project:
    name: str
    path: Path
    slug: str
    flower: bool
    broker: str = "redis"
    times: dict[str, float] = field(default_factory=dict)


@dataclass
class Stack:
    engine: Engine
    project: Project
    files: list[str]
    name: str
    # Host ports, free when the stack is made, published through the compose files' *_HOST_PORT variables: a
    # fixed 8000 was once "already allocated" in the engine when the local stack came up (stop-20 landing CI).
    ports: dict[str, int] = field(default_factory=lambda: {"web": free_port(), "flower": free_port(),
                                                            "mailpit": free_port()})  # fmt: skip

    @property
    def env(self) -> dict[str, str]:
        published = {f"{service.upper()}_HOST_PORT": str(port) for service, port in self.ports.items()}
        return {**self.engine.env, **published}

    def url(self, service: str, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def compose(self, *argv: str, timeout: float = 300, check: bool = True, input: str | None = None):
        command = [*compose_command(), "-p", self.name]
        for file in self.files:
            command += ["-f", file]
        result = subprocess.run(
            [*command, *argv], cwd=self.project.path, env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False, input=input,
        )  # fmt: skip
        if check and result.returncode != 0:
            pytest.fail(
                f"`{' '.join(argv)}` exited {result.returncode}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}\n"
                f"--- logs ---\n{self.logs()[-8000:]}",
                pytrace=False,
            )
        return result

    def services(self) -> list[str]:
        return self.compose("config", "--services").stdout.split()

    def long_running(self) -> list[str]:
        return [service for service in self.services() if service != "migrate"]

    def container(self, service: str) -> str:
        ids = self.compose("ps", "-q", service).stdout.split()
        assert ids, f"no container for {service}"
        return ids[0]

    def inspect(self, service: str, fmt: str) -> str:
        return self.engine.docker("inspect", "--format", fmt, self.container(service)).stdout.strip()

    def logs(self, *services: str) -> str:
        result = self.compose("logs", "--no-color", *services, check=False, timeout=120)
        return result.stdout + result.stderr

    def wait_healthy(self, services: list[str], budget: float = HEALTH_BUDGET) -> float:
        started = time.monotonic()
        deadline = started + budget
        while True:
            states = {service: self.inspect(service, "{{if .State.Health}}{{.State.Health.Status}}{{end}}")
                      for service in services}  # fmt: skip
            if all(state == "healthy" for state in states.values()):
                return time.monotonic() - started
            if time.monotonic() > deadline:
                pytest.fail(f"not healthy within {budget:.0f} s: {states}\n{self.logs()[-8000:]}", pytrace=False)
            time.sleep(2)

    def python(self, service: str, code: str, timeout: float = 120) -> str:
        """Run Python with the project's settings loaded inside a running service's container."""
        script = "import django\ndjango.setup()\n" + textwrap.dedent(code)
        return self.compose("exec", "-T", service, "python", "-", input=script, timeout=timeout).stdout

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "--timeout", "60", timeout=600, check=False)


def http(url: str, host: str, auth: tuple[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    """GET without following redirects: (status, headers, body)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    request = urllib.request.Request(url, headers={"Host": host})
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=15) as response:
            return response.status, dict(response.headers), response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode(errors="replace")


def wait_for(what: str, predicate, budget: float = TASK_BUDGET, interval: float = 1.0):
    deadline = time.monotonic() + budget
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {budget:.0f} s", pytrace=False)
        time.sleep(interval)


# --- fixtures ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    started = time.monotonic()
    with docker_engine() as found:
        mailpit = re.search(r"image: (axllent/mailpit\S*)", (TEMPLATE_DIR / "{{cookiecutter.project_slug}}" /
                                                             "docker-compose.yml").read_text()).group(1)  # fmt: skip
        found.standins = ensure_base_images(found, mailpit)
        how = "a private dockerd started by the tests" if found.started_here else f"the engine at {found.host}"
        report(
            f"CONTAINERS engine: {how}; base images: "
            + (f"stand-ins built from Debian for {', '.join(found.standins)}" if found.standins else "the real images")
            + f" ({time.monotonic() - started:.0f} s)"
        )
        yield found


@pytest.fixture(scope="module", params=list(BAKES))
def project(request, engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Project:
    name = request.param
    path = bake_project(tmp_path_factory.mktemp(f"containers-{name}"), **BAKES[name])
    flower = BAKES[name].get("use_flower", "y") == "y"
    broker = BAKES[name].get("broker", "redis")
    baked = Project(name=name, path=path, slug=path.name, flower=flower, broker=broker)
    for target, tag, args in (
        ("builder", f"{baked.slug}_builder", []),
        ("runtime", f"{baked.slug}_production_django", []),
        ("runtime", f"{baked.slug}_local_django", ["--build-arg", "UV_SYNC_ARGS=--group dev"]),
    ):
        started = time.monotonic()
        # Host networking: the build steps reach the package registry; the engine has no default bridge.
        engine.docker("build", "--network", "host", "--target", target, "-t", tag, *args, str(path), timeout=900)
        baked.times[f"build {tag}"] = time.monotonic() - started
    return baked


def _stack(engine: Engine, project: Project, file: str, kind: str) -> Stack:
    return Stack(engine=engine, project=project, files=[file], name=f"ct{project.name.replace('-', '')}{kind}")


# --- tests ------------------------------------------------------------------------------------------------------


def test_images_build_non_root_without_tests_or_tools(engine: Engine, project: Project):
    image = f"{project.slug}_production_django"
    assert engine.docker("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip() == "1000:1000"
    who = engine.docker("run", "--rm", "--network", "none", "--entrypoint", "id", image, "-u").stdout.strip()
    assert who == "1000"
    absent = ["tests", "tools", "docs", ".env", ".envs", ".git"]
    present = engine.docker(
        "run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c",
        " ".join(f"[ -e /app/{name} ] && echo {name};" for name in absent) + " true",
    ).stdout.split()  # fmt: skip
    assert present == [], f"in the production image: {present}"
    # The bake wrote uv.lock (hooks/post_gen_project.py) and the builder installed with `uv sync --locked`.
    assert (project.path / "uv.lock").exists(), "the bake wrote no uv.lock"
    locked = engine.docker("run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", "test -f uv.lock",
                           check=False)  # fmt: skip
    assert locked.returncode == 0, "no uv.lock in the image"
    sizes = {}
    for tag in (image, f"{project.slug}_local_django"):
        sizes[tag] = int(engine.docker("image", "inspect", "--format", "{{.Size}}", tag).stdout) / 1e6
    report(
        f"CONTAINERS {project.name} images: "
        + ", ".join(f"{tag} {size:.0f} MB" for tag, size in sizes.items())
        + "; build times: "
        + ", ".join(f"{step.removeprefix('build ')} {seconds:.0f} s" for step, seconds in project.times.items())
    )


def teammate_clone(project: Project, destination: Path) -> Project:
    """The bake as a teammate gets it: committed, then cloned, so no git-ignored file (.env, production) comes."""
    for argv in (["init", "-q"], ["add", "--all"], ["-c", "user.name=t", "-c", "user.email=t@example.com",
                                                      "commit", "-qm", "bake"]):  # fmt: skip
        subprocess.run(["git", *argv], cwd=project.path, check=True, capture_output=True)
    clone = destination / project.slug
    subprocess.run(["git", "clone", "-q", str(project.path), str(clone)], check=True, capture_output=True)
    assert not (clone / ".env").exists()
    assert not (clone / ".envs/.production").exists()
    return Project(name=project.name, path=clone, slug=project.slug, flower=project.flower, broker=project.broker)


RELOAD_PROBE = """

@shared_task(name="taskqueue.reload_probe")
def reload_probe() -> str:
    return "picked up by the reload"
"""


def test_local_stack(engine: Engine, project: Project, tmp_path: Path):
    # Run from a clone, the way a teammate starts it: the committed local env files are all it needs.
    clone = teammate_clone(project, tmp_path)
    stack = _stack(engine, clone, "docker-compose.yml", "local")
    env = read_env_file(clone.path / ".envs/.local/.django")
    try:
        stack.down()  # volumes an interrupted run left behind hold another bake's passwords
        started = time.monotonic()
        stack.compose("up", "--detach", "--no-build", timeout=HEALTH_BUDGET + 120)
        healthy = stack.wait_healthy(stack.long_running())
        up = time.monotonic() - started
        status, _, body = http(stack.url("web", "/healthz/"), "localhost")
        assert status == 200, body
        _check_queues(stack)
        _check_rabbitmq(stack, clone, ".envs/.local/.rabbitmq")
        _check_flower(stack, clone, env)
        _check_beat_lock(stack, auth=None)
        # Local mail goes to the mail catcher.
        stack.compose("exec", "-T", "web", "python", "manage.py", "sendtestemail", "someone@example.com")

        def caught():
            status, _, body = http(stack.url("mailpit", "/api/v1/messages"), "localhost")
            return status == 200 and json.loads(body).get("total", 0) >= 1

        wait_for("the test mail in the mail catcher", caught, budget=30)
        reloaded = _check_reload(stack, clone)
        _check_logs(stack)
        report(
            f"CONTAINERS {project.name} local stack (from a clone): up and healthy in {up:.0f} s (health wait "
            f"{healthy:.0f} s); an edited task module reloaded every worker in {reloaded:.0f} s"
        )
    finally:
        stack.down()


def _check_reload(stack: Stack, clone: Project) -> float:
    """A task added to a mounted module runs without a restart by hand: compose/local/reload.py restarts workers."""
    workers = ["worker", "worker-io", "worker-cpu"]
    tasks = clone.path / clone.slug / "taskqueue" / "tasks.py"
    started = time.monotonic()
    tasks.write_text(tasks.read_text() + RELOAD_PROBE)
    for service in workers:
        wait_for(f"{service} restarted by the reloader", lambda service=service: "reload: " in stack.logs(service))
        wait_for(
            f"{service} ready again",
            lambda service=service: stack.logs(service).split("reload: ", 1)[-1].count(" ready.") >= 1,
        )
    took = time.monotonic() - started
    sent = stack.compose(
        "exec", "-T", "web", "celery", "-A", "config.celery_app", "call", "taskqueue.reload_probe",
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    wait_for(
        "the new task on the reloaded worker",
        lambda: f"[{sent}] succeeded" in stack.logs("worker") and "picked up by the reload" in stack.logs("worker"),
    )
    return took


def test_production_stack(engine: Engine, project: Project):
    stack = _stack(engine, project, "docker-compose.production.yml", "production")
    env = read_env_file(project.path / ".envs/.production/.django")
    domain = env["DJANGO_ALLOWED_HOSTS"].split(",")[0].lstrip(".")
    redis_password = read_env_file(project.path / ".envs/.production/.redis")["REDIS_PASSWORD"]
    try:
        stack.down()  # volumes an interrupted run left behind hold another bake's passwords
        started = time.monotonic()
        stack.compose("up", "--detach", "--no-build", timeout=HEALTH_BUDGET + 120)
        stack.wait_healthy(stack.long_running())
        up = time.monotonic() - started
        status, _, body = http(stack.url("web", "/healthz/"), domain)
        assert status == 200, body
        status, headers, _ = http(stack.url("web"), domain)
        assert status in (301, 302, 307, 308), status
        assert headers.get("Location", "").startswith(f"https://{domain}"), headers
        _check_queues(stack)
        _check_rabbitmq(stack, project, ".envs/.production/.rabbitmq")
        _check_flower(stack, project, env)
        _check_beat_lock(stack, auth=redis_password)
        _check_logs(stack)
        report(f"CONTAINERS {project.name} production stack: up and healthy in {up:.0f} s")
        if project.name == "default":
            _delivery_scenarios(stack)
    finally:
        stack.down()


# --- checks ------------------------------------------------------------------------------------------------------


def _check_queues(stack: Stack) -> None:
    """One task through each queue's worker container (celery.accumulate: built in, needs no result backend)."""
    for service, queue in (("worker", "default"), ("worker-io", "io"), ("worker-cpu", "cpu")):
        sent = stack.compose(
            "exec", "-T", "web", "celery", "-A", "config.celery_app", "call", "celery.accumulate",
            "--queue", queue, "--args", "[1]",
        ).stdout.strip().splitlines()[-1]  # fmt: skip
        wait_for(
            f"task {sent} on the {queue} queue",
            lambda service=service, sent=sent: f"[{sent}] succeeded" in stack.logs(service),
        )


def _check_rabbitmq(stack: Stack, project: Project, env_file: str) -> None:
    """A RabbitMQ project's queues, as the node lists them: quorum queues in the project's virtual host, with the
    delivery limit and the dead-letter exchange its settings declare, and the dead-letter queue they feed."""
    if project.broker != "rabbitmq":
        assert "rabbitmq" not in stack.services()
        return
    vhost = read_env_file(project.path / env_file)["RABBITMQ_DEFAULT_VHOST"]
    listed = stack.compose(
        "exec", "-T", "rabbitmq", "rabbitmqctl", "list_queues", "-q", "-p", vhost, "name", "type", "arguments",
        "--formatter", "json",
    ).stdout  # fmt: skip
    queues = {queue["name"]: queue for queue in json.loads(listed)}
    for name in ("default", "io", "cpu", "dead-letters"):
        assert name in queues, f"{name} not declared in {vhost}: {sorted(queues)}"
        assert queues[name]["type"] == "quorum", queues[name]
    for name in ("default", "io", "cpu"):
        # rabbitmqctl's JSON lists a queue's arguments as AMQP table entries: [name, type, value].
        arguments = {argument: value for argument, _, value in queues[name]["arguments"]}
        assert arguments.get("x-dead-letter-exchange") == "dead-letters", arguments
        assert arguments.get("x-dead-letter-strategy") == "at-least-once", arguments
        assert int(arguments.get("x-delivery-limit", 0)) > 0, arguments
    # compose/rabbitmq.conf reached the node: its consumer_timeout (ms) is the settings' RABBITMQ_CONSUMER_TIMEOUT (s),
    # which celery.E021 holds every task's run under.
    configured = stack.compose(
        "exec", "-T", "rabbitmq", "rabbitmqctl", "eval", "application:get_env(rabbit, consumer_timeout).",
    ).stdout.strip()  # fmt: skip
    assert configured == "{ok,1800000}", configured


def _check_flower(stack: Stack, project: Project, env: dict[str, str]) -> None:
    if not project.flower:
        assert "flower" not in stack.services()
        return
    status, _, _ = http(stack.url("flower"), "localhost")
    assert status == 401
    status, _, _ = http(stack.url("flower"), "localhost", auth=(env["FLOWER_USER"], env["FLOWER_PASSWORD"]))
    assert status == 200


def _check_beat_lock(stack: Stack, auth: str | None) -> None:
    def held():
        argv = ["exec", "-T", "redis"]
        if auth:
            argv += ["env", f"REDISCLI_AUTH={auth}"]
        # The beat lock is a cache key: the cache's database is REDIS_URL's plus 2 (config/redis_roles.py).
        out = stack.compose(*argv, "redis-cli", "-n", "2", "--scan", "--pattern", "*beat-lock*").stdout.split()
        return out

    wait_for("the beat lock in Redis", held, budget=30)


def _check_logs(stack: Stack) -> None:
    lines = stack.logs().splitlines()
    bad = ["\n".join(lines[n : n + 12]) for n, line in enumerate(lines) if ERROR_LINE.search(line)]
    assert not bad, "error lines in the containers' logs:\n" + "\n---\n".join(bad[:10])


# --- delivery scenarios ------------------------------------------------------------------------------------------

LEDGER = """
from tests.reliability import ledger
"""


def _delivery_scenarios(stack: Stack) -> None:
    """Reconfigure the workers through an override file, then kill, stop and restart containers under load."""
    override = stack.project.path / "docker-compose.containers-test.yml"
    mount = {"volumes": ["./tests:/app/tests:ro"]}
    workers = {
        "environment": {
            **SHORT_TIMEOUTS,
            "CELERY_WORKER_INCLUDE": "tests.reliability.tasks,tests.taskqueue.hang_control",
            "WORKER_STUCK_AFTER": str(STUCK_AFTER),
        },
        **mount,
    }
    override.write_text(
        json.dumps({"services": {"web": {"environment": SHORT_TIMEOUTS, **mount}, "worker": workers}}, indent=2)
    )
    stack.files.append(override.name)
    stack.compose("up", "--detach", "--no-build", "web", "worker", timeout=HEALTH_BUDGET + 120)
    stack.wait_healthy(["web", "worker"])
    stack.python("web", LEDGER + "ledger.create_tables()")

    def send(keys: list[str], **kwargs) -> None:
        stack.python(
            "web",
            f"""
            from config.celery_app import app
            for key in {keys!r}:
                app.send_task({TASK!r}, args=[key], kwargs={kwargs!r}, queue="default")
            """,
        )

    def completed(keys: list[str]) -> int:
        return int(stack.python("web", LEDGER + f"print(ledger.completed({keys!r}))").split()[-1])

    def runs(key: str) -> int:
        return int(stack.python("web", LEDGER + f"print(len(ledger.runs({key!r})))").split()[-1])

    def figures(scenario: str, keys: list[str], notes: str) -> list[int]:
        out = stack.python(
            "web",
            LEDGER + f"f = ledger.figures({scenario!r}, {keys!r}, notes={notes!r})\n"
            "print(f.line())\nprint(f.sent, f.completed, f.lost, f.duplicated, f.executions)",
        ).splitlines()
        report(out[-2].replace("RELIABILITY", "CONTAINERS delivery"))
        return [int(n) for n in out[-1].split()]

    # 1. SIGKILL of the worker container's main process mid-task, from the host, as the OOM killer would.
    keys = ["container-sigkill"]
    send(keys, hold_before=DOOMED_HOLD)
    wait_for("the first run of the doomed task", lambda: runs(keys[0]) >= 1)
    pid = int(stack.inspect("worker", "{{.State.Pid}}"))
    restarts = int(stack.inspect("worker", "{{.RestartCount}}"))
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    assert completed(keys) == 0, f"the task finished before the kill landed: raise DOOMED_HOLD ({DOOMED_HOLD} s)"
    wait_for("the worker container restarted", lambda: int(stack.inspect("worker", "{{.RestartCount}}")) > restarts)
    # Redis hands the unacked message back once the visibility timeout passed, at the restarted worker's next
    # restore of unacked messages (measured: about 100 s after the kill).
    wait_for("the killed task completed", lambda: completed(keys) == 1, budget=300, interval=3)
    back = time.monotonic() - killed_at
    sent, done, lost, duplicated, executions = figures(
        "worker-container-sigkill", keys, f"restart policy brought it back; done {back:.0f} s after the kill"
    )
    assert (sent, done, lost, duplicated, executions) == (1, 1, 0, 0, 2)

    # 2. `stop` (SIGTERM) with tasks in flight: they finish within the grace period; nothing lost or repeated.
    stack.wait_healthy(["worker"])
    keys = [f"container-sigterm-{n}" for n in range(4)]
    send(keys, hold_before=3)
    wait_for("a task running", lambda: runs(keys[0]) >= 1)
    stopped_at = time.monotonic()
    stack.compose("stop", "worker", timeout=450)
    took = time.monotonic() - stopped_at
    assert took < 390, f"stop took {took:.0f} s (grace period 390 s)"
    stack.compose("start", "worker")
    wait_for("the stopped worker's tasks completed", lambda: completed(keys) == len(keys), budget=120)
    time.sleep(int(SHORT_TIMEOUTS["CELERY_VISIBILITY_TIMEOUT"]) + 3)  # anything left unacked would be redelivered
    sent, done, lost, duplicated, executions = figures("worker-container-sigterm", keys, f"stop took {took:.0f} s")
    assert (sent, done, lost, duplicated, executions) == (4, 4, 0, 0, 4)

    # 3. Redis restarted with 500 tasks queued: AOF brings them back, each runs once.
    stack.compose("stop", "worker", timeout=450)
    keys = [f"container-redis-{n}" for n in range(500)]
    send(keys)
    time.sleep(2)  # appendfsync everysec
    stack.compose("restart", "redis", timeout=120)
    stack.wait_healthy(["redis"])
    stack.compose("start", "worker")
    wait_for("500 tasks completed after the Redis restart", lambda: completed(keys) == len(keys), budget=240,
             interval=3)  # fmt: skip
    sent, done, lost, duplicated, executions = figures("redis-container-restart", keys, "AOF, appendfsync everysec")
    assert (sent, done, lost, duplicated, executions) == (500, 500, 0, 0, 500)

    # 4. The worker's event loop stops (a broadcast command that sleeps in it): plain Docker never restarts an
    # unhealthy container, so the worker's own watchdog ends it and the restart policy starts a fresh one.
    stack.wait_healthy(["worker"])
    restarts = int(stack.inspect("worker", "{{.RestartCount}}"))
    node = f"default@{stack.inspect('worker', '{{.Config.Hostname}}')}"
    hung_at = time.monotonic()
    stack.python(
        "web",
        f"""
        from config.celery_app import app
        app.control.broadcast("hang_event_loop", arguments={{"seconds": 600}}, destination=[{node!r}])
        """,
    )
    wait_for(
        "the stuck worker's container restarted",
        lambda: int(stack.inspect("worker", "{{.RestartCount}}")) > restarts,
        budget=STUCK_AFTER + 60,
    )
    restarted = time.monotonic() - hung_at
    stack.wait_healthy(["worker"])
    healthy = time.monotonic() - hung_at
    assert "Worker loop has not advanced for" in stack.logs("worker")
    report(
        f"CONTAINERS stuck worker loop: container restarted {restarted:.0f} s after the loop stopped "
        f"(WORKER_STUCK_AFTER={STUCK_AFTER}), healthy again after {healthy:.0f} s"
    )
    stack.python("web", LEDGER + "ledger.drop_tables()")

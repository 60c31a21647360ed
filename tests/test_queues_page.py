"""The admin's "Task queues" page in a real browser: headless Chromium, logged in as staff, against real Redis.

The generated project's web (runserver, local settings, SQLite) runs as a subprocess on a free loopback port;
tasks are queued with no worker consuming them, so the depths the page shows must equal Redis's LLEN.
The screenshot is kept at $TEMPLATE_TEST_ARTIFACTS/queues-page.png (default: the template tests' cache
directory, ~/.cache/django-celery-template-tests/artifacts/).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bakery import CACHE_DIR, free_port, project_env, run_in

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(os.environ.get("TEMPLATE_TEST_ARTIFACTS", CACHE_DIR / "artifacts"))
# Queued by name, with no worker running: routed by verb like every task of the project.
QUEUED = {"demo.fetch_page": 3, "demo.build_report": 2, "demo.tidy_up": 1}
SETUP = """
from config.celery_app import app
from {slug}.taskqueue.models import FailedTask
from {slug}.users.models import User

User.objects.create_superuser("staff", "staff@example.com", "staff-password")
FailedTask.objects.create(task_id="dead-1", task_name="demo.fetch_page", queue="io", exception="TimeoutError",
                          message="the API did not answer")
for name, count in {queued!r}.items():
    for _ in range(count):
        app.send_task(name)
"""


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def answers(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def redis_port() -> Iterator[int]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: `apt-get install redis-server` (see .ci/run).")
    port = free_port()
    directory = tempfile.mkdtemp(prefix="redis-queues-page-")
    process = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", directory, "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: answers(port), 30, f"redis-server on port {port}")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(directory, ignore_errors=True)


def llen(port: int, queue: str) -> int:
    result = subprocess.run(
        ["redis-cli", "-p", str(port), "LLEN", queue], capture_output=True, text=True, timeout=30, check=True
    )
    return int(result.stdout.strip())


def test_queues_page_in_chromium_matches_redis(bake_once, template_venv, redis_port, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: `apt-get install chromium` (see .ci/run).")
    from playwright.sync_api import sync_playwright

    project = bake_once("defaults")
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "BEAT_HEARTBEAT_FILE": str(tmp_path / "beat-heartbeat"),
    }
    run_in(project, "python", "manage.py", "migrate", "--no-input", venv=template_venv, env=env, timeout=300)
    run_in(
        project, "python", "manage.py", "shell", "-c", SETUP.format(slug="my_project", queued=QUEUED),
        venv=template_venv, env=env, timeout=120,
    )  # fmt: skip
    port = free_port()
    web = subprocess.Popen(
        ["python", "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"],
        cwd=project,
        env=project_env(template_venv, env),
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "web.log").open("w"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(port) or web.poll() is not None, 60, "runserver")
        assert web.poll() is None, (tmp_path / "web.log").read_text()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                page.goto(f"{base}/admin/login/?next=/admin/queues/")
                page.fill("#id_username", "staff")
                page.fill("#id_password", "staff-password")
                page.click("input[type=submit]")
                page.wait_for_url(f"{base}/admin/queues/", timeout=15_000)
                shown = {
                    row.get_attribute("data-queue"): int(row.locator("td.depth").inner_text())
                    for row in page.locator("#queues tr[data-queue]").all()
                }
                ages = page.locator("#queues td.oldest-age").all_inner_texts()
                failures = page.locator("#failures").inner_text()
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                screenshot = ARTIFACTS / "queues-page.png"
                page.screenshot(path=str(screenshot), full_page=True)
                print(f"screenshot: {screenshot}")

                page.goto(f"{base}/")  # DEBUG is on with local settings: the start page
                start_links = page.locator("a").evaluate_all("links => links.map(link => link.getAttribute('href'))")
            finally:
                browser.close()
    finally:
        web.terminate()
        web.wait(timeout=30)

    expected = {"io": 3, "cpu": 2, "default": 1}
    assert shown == {queue: llen(redis_port, queue) for queue in shown}
    assert shown == expected
    assert all(age.endswith(" s") for age in ages), ages  # every queued message carries its publish time
    assert "demo.fetch_page" in failures
    assert "Replay" in failures
    assert screenshot.stat().st_size > 10_000
    assert {"/admin/", "/admin/queues/", "/healthz/", "http://localhost:8025/", "http://localhost:5555/"} <= set(
        start_links
    )


def test_metrics_endpoint_requires_its_token_in_production(bake_once):
    """The post-generation hook gives production a METRICS_TOKEN (production.py requires one)."""
    project = bake_once("defaults")
    env_file = (project / ".envs/.production/.django").read_text()
    (token,) = [line.split("=", 1)[1] for line in env_file.splitlines() if line.startswith("METRICS_TOKEN=")]
    assert len(token) >= 32
    assert 'METRICS_TOKEN = env("METRICS_TOKEN")' in (project / "config/settings/production.py").read_text()

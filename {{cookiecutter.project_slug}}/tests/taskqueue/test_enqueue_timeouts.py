"""Enqueueing never hangs a request: with Redis down, or up but not answering, a view that enqueues answers
503 with the reason within 5 s."""

import json
import os
import socket
import subprocess
import sys
import threading

import pytest

from tools.procfile import PROJECT_DIR

# In a process of its own: the broker settings are read when Celery first connects.
REQUEST = """
import json, time, django
django.setup()
from django.test import Client, override_settings
started = time.monotonic()
with override_settings(ROOT_URLCONF="tests.taskqueue.enqueue_urls"):
    response = Client(raise_request_exception=False).get("/enqueue/")
print(json.dumps({"status": response.status_code, "seconds": time.monotonic() - started,
                  "body": response.content.decode()}))
"""


class SilentRedis:
    """A loopback server that accepts connections and never answers: a Redis behind a dead network path."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.clients = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.done.is_set():
            try:
                self.clients.append(self.server.accept()[0])
            except TimeoutError:
                continue

    def close(self):
        self.done.set()
        self.thread.join(timeout=5)
        for client in self.clients:
            client.close()
        self.server.close()


@pytest.fixture
def silent_redis():
    server = SilentRedis()
    yield f"redis://127.0.0.1:{server.port}/0"
    server.close()


def request_enqueue(redis_url: str) -> dict:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "REDIS_URL": redis_url}
    result = subprocess.run(
        [sys.executable, "-c", REQUEST],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "log": result.stderr}


@pytest.mark.parametrize("shape", ["refused", "silent"])
def test_a_view_that_enqueues_while_redis_is_unavailable_answers_503_within_5_seconds(shape, silent_redis):
    url = "redis://127.0.0.1:1/0" if shape == "refused" else silent_redis
    answer = request_enqueue(url)
    assert answer["status"] == 503, answer
    assert answer["seconds"] < 5, answer
    assert "The task queue is unavailable; nothing was enqueued" in answer["body"]
    assert "Could not enqueue a task for GET /enqueue/: the broker is unavailable" in answer["log"]

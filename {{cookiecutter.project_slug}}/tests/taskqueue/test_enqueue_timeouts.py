"""Enqueueing never hangs a request: with the broker ({% if cookiecutter.broker == "rabbitmq" %}RabbitMQ{% else %}Redis{% endif %}) down, or up but not answering, a view that enqueues
answers 503 with the reason within 5 s."""

import selectors
import socket
import threading
import time
from typing import cast

import pytest

from tests.support.django_process import run_python

# In a web process of its own (tests/support/django_process.py, warmed first): the broker settings are read when
# Celery first connects. The clock covers the request alone.
REQUEST = """
import json, logging, time
from django.test import Client, override_settings
# kombu's account of each failed try and reconnection (KOMBU_LOG_CONNECTION), for the report of an unexpected answer.
logging.getLogger("kombu").setLevel(logging.DEBUG)
started = time.time()
with override_settings(ROOT_URLCONF="tests.taskqueue.enqueue_urls"):
    response = Client(raise_request_exception=False).get("/enqueue/")
print(json.dumps({"status": response.status_code, "started": started, "seconds": time.time() - started,
                  "body": response.content.decode()}))
"""


class SilentRedis:
    """A loopback server that accepts connections and never answers: a Redis behind a dead network path.

    It notes when each connection was accepted and when the client gave it up, so a slow answer shows whether
    the time went in waits on the server (bounded by the broker's socket timeouts) or elsewhere.
    """

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.server.setblocking(False)
        self.port = self.server.getsockname()[1]
        self.connections: list[list[float | None]] = []  # [accepted at, closed by the client at], Unix time
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.server, selectors.EVENT_READ)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.done.is_set():
            for key, _ in self.selector.select(timeout=0.2):
                if key.fileobj is self.server:
                    client, _ = self.server.accept()
                    self.connections.append([time.time(), None])
                    self.selector.register(client, selectors.EVENT_READ, data=self.connections[-1])
                    continue
                try:
                    data = cast(socket.socket, key.fileobj).recv(65536)  # the client's commands, never answered
                except OSError:
                    data = b""
                if not data:
                    key.data[1] = time.time()
                    self.selector.unregister(key.fileobj)
                    cast(socket.socket, key.fileobj).close()

    def timeline(self, started: float) -> str:
        def at(moment):
            return "open" if moment is None else f"+{moment - started:.2f} s"

        return "; ".join(f"accepted {at(opened)}, closed {at(closed)}" for opened, closed in self.connections)

    def close(self):
        self.done.set()
        self.thread.join(timeout=5)
        for key in list(self.selector.get_map().values()):
            cast(socket.socket, key.fileobj).close()
        self.selector.close()


@pytest.fixture
def silent_redis():
    server = SilentRedis()
    yield server
    server.close()


{% if cookiecutter.broker == "rabbitmq" -%}
def request_enqueue(broker_url: str, redis_url: str) -> dict:
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "CELERY_BROKER_URL": broker_url,
        "REDIS_URL": redis_url,
        "KOMBU_LOG_CONNECTION": "1",
    }
    answer, log = run_python(REQUEST, env, timeout=60)
    return {**answer, "log": log}


@pytest.mark.parametrize("shape", ["refused", "silent"])
def test_a_view_that_enqueues_while_rabbitmq_is_unavailable_answers_503_within_5_seconds(
    shape, silent_redis, redis_url
):
    # The silent server speaks no AMQP either: a RabbitMQ behind a dead network path.
    port = 1 if shape == "refused" else silent_redis.port
    answer = request_enqueue(f"amqp://guest:guest@127.0.0.1:{port}//", redis_url)
{%- else -%}
def request_enqueue(redis_url: str) -> dict:
    env = {"DJANGO_SETTINGS_MODULE": "config.settings.test", "REDIS_URL": redis_url, "KOMBU_LOG_CONNECTION": "1"}
    answer, log = run_python(REQUEST, env, timeout=60)
    return {**answer, "log": log}


@pytest.mark.parametrize("shape", ["refused", "silent"])
def test_a_view_that_enqueues_while_redis_is_unavailable_answers_503_within_5_seconds(shape, silent_redis):
    url = "redis://127.0.0.1:1/0" if shape == "refused" else f"redis://127.0.0.1:{silent_redis.port}/0"
    answer = request_enqueue(url)
{%- endif %}
    report = (
        f"answered {answer['status']} in {answer['seconds']:.2f} s; connections to the silent server: "
        f"{silent_redis.timeline(answer['started']) or 'none'}; body: {answer['body']!r}; log: {answer['log']}"
    )
    assert answer["status"] == 503, report
    assert answer["seconds"] < 5, report
    assert "The task queue is unavailable, so your request may not have been queued" in answer["body"], report
    logged = "Could not enqueue a task for GET /enqueue/: the broker is unavailable (the task may still run"
    assert logged in answer["log"], report
    if shape == "silent":
        # The send and its one retry, each on a connection given up after the broker's 1.5 s socket timeout: two
        # connections in nearly every run (3.0 s). Once, in a fresh-clone CI run on a loaded machine, there was one,
        # held for 4.27 s of a 4.28 s answer: the retry never connected. kombu's debug lines in the log say which way
        # a run went. Either way no third connection is opened: one retry, bounded by the 5 s above.
        assert 1 <= len(silent_redis.connections) <= 2, report

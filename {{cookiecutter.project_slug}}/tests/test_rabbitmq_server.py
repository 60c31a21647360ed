"""`make rabbitmq` and `make stop-rabbitmq` (tools/rabbitmq_server.py): a node that outlives the command and keeps its
messages across a stop and a start, and leaves no process behind when stopped."""

import socket
import subprocess
import sys
import time

import pytest
from kombu import Connection, Queue

from tools.procfile import PROJECT_DIR
from tools.rabbitmq_server import ANSWER_TIMEOUT, RabbitMQServer, free_port, group_alive


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tools.rabbitmq_server", *args],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_make_rabbitmq_starts_a_node_that_outlives_it_and_keeps_its_messages_until_stopped(tmp_path):
    directory, port = tmp_path / ".rabbitmq", free_port()
    started = cli("start", "--dir", str(directory), "--port", str(port))
    assert started.returncode == 0, started.stderr
    assert f"Started RabbitMQ on port {port}" in started.stdout
    node = RabbitMQServer(directory)
    pgid = node.server_pid()
    try:
        assert pgid is not None
        assert group_alive(pgid)
        assert "already runs" in cli("start", "--dir", str(directory)).stdout
        kept = Queue("kept", routing_key="kept", durable=True, queue_arguments={"x-queue-type": "quorum"})
        with Connection(node.url) as connection:
            connection.SimpleQueue(kept).put({"survives": "a restart"})

        stopped = cli("stop", "--dir", str(directory))
        assert stopped.returncode == 0, stopped.stderr
        assert "Stopped RabbitMQ" in stopped.stdout
        assert not group_alive(pgid), "a process of the node outlived make stop-rabbitmq"

        assert cli("start", "--dir", str(directory)).returncode == 0
        with Connection(node.url) as connection:
            queue = connection.SimpleQueue(kept)
            # A quorum queue is back once its (single-member) Raft group has recovered its log: seconds.
            assert queue.get(timeout=60).payload == {"survives": "a restart"}
            queue.close()
    finally:
        cli("stop", "--dir", str(directory))
    assert "No RabbitMQ started by `make rabbitmq` runs" in cli("stop", "--dir", str(directory)).stdout


def test_make_rabbitmq_uses_a_server_that_already_answers_on_its_port(rabbitmq_node, tmp_path):
    result = cli("start", "--dir", str(tmp_path / ".rabbitmq"), "--port", str(rabbitmq_node.port))
    assert result.returncode == 0, result.stderr
    assert f"A RabbitMQ already answers on port {rabbitmq_node.port}: using it" in result.stdout
    assert RabbitMQServer(tmp_path / ".rabbitmq").server_pid() is None


@pytest.fixture
def taken_port():
    """A port where something listens and never answers (connections wait in its backlog)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def test_make_rabbitmq_refuses_a_port_taken_by_a_server_that_does_not_answer_amqp(taken_port, tmp_path):
    # Before: a node was started on the taken port, and its wait for AMQP found the other server: "Started RabbitMQ".
    began = time.monotonic()
    result = cli("start", "--dir", str(tmp_path / ".rabbitmq"), "--port", str(taken_port))
    elapsed = time.monotonic() - began
    assert result.returncode == 1, result.stdout
    assert f"Port {taken_port} on 127.0.0.1 is taken by a server that did not accept AMQP" in result.stderr
    assert "Started" not in result.stdout
    assert RabbitMQServer(tmp_path / ".rabbitmq").server_pid() is None
    assert elapsed < ANSWER_TIMEOUT + 30, f"refused only after {elapsed:.0f} s"


def test_a_node_is_not_started_on_a_taken_port(taken_port, tmp_path):
    node = RabbitMQServer(tmp_path / "node", port=taken_port)
    with pytest.raises(RuntimeError, match=f"Port {taken_port} on 127.0.0.1 is already taken"):
        node.start()
    assert node.server_pid() is None


def test_the_node_refreshes_its_quorum_queues_counts_every_tenth_of_a_second(rabbitmq_node):
    # The reliability suite and the contract harness read unacked counts from list_queues to decide a queue has
    # settled; at RabbitMQ's default tick (5 s) a new quorum queue read empty with a message in flight.
    assert rabbitmq_node.ctl_run("eval", "application:get_env(rabbit, quorum_tick_interval).").strip() == "{ok,100}"

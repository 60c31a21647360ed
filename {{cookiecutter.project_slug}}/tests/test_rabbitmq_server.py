"""`make rabbitmq` and `make stop-rabbitmq` (tools/rabbitmq_server.py): a node that outlives the command and keeps its
messages across a stop and a start, and leaves no process behind when stopped."""

import subprocess
import sys

from kombu import Connection, Queue

from tools.procfile import PROJECT_DIR
from tools.rabbitmq_server import RabbitMQServer, free_port, group_alive


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


def test_the_node_refreshes_its_quorum_queues_counts_every_tenth_of_a_second(rabbitmq_node):
    # The reliability suite and the contract harness read unacked counts from list_queues to decide a queue has
    # settled; at RabbitMQ's default tick (5 s) a new quorum queue read empty with a message in flight.
    assert rabbitmq_node.ctl_run("eval", "application:get_env(rabbit, quorum_tick_interval).").strip() == "{ok,100}"

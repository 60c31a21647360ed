"""The patched broker transport (taskqueue/patches/kombu.py).

A worker takes a message and records it as unacked in one step, so a SIGKILL cannot lose it
(kombu's own transport loses it between the two: tests/reliability/test_streams.py's chaos
scenario caught that). A malformed message is logged and dropped; the worker keeps running tasks
(with kombu's own transport it stops: "Unrecoverable error"). A real prefork worker fed every kind
of bad message: tests/reliability/test_bad_messages.py.
"""

import contextlib
import fcntl
import json
import logging
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
import uuid
from functools import partial
from queue import Empty
from typing import Any

import pytest
import redis
from django.core.cache import cache
from kombu import Connection, Consumer, Queue
from redis.sentinel import SentinelConnectionPool

from config.celery_app import app as celery_app
from {{ cookiecutter.project_slug }}.taskqueue import broker_redis
from {{ cookiecutter.project_slug }}.taskqueue.patches.kombu import (
    CLAIM_SEPARATOR,
    MalformedMessageError,
    ProtectedChannel,
    SentinelTransport,
    Transport,
    decode_envelope,
)
from tests.reliability.sentinel import MASTER_NAME, SentinelTopology
from tests.support.waiting import wait_until
from tests.taskqueue.tasks import build_delivery, fetch_delivery, record_delivery
from tools.redis_server import RedisServer


def test_the_broker_url_keeps_its_redis_scheme_and_uses_the_project_transport():
    with celery_app.connection_for_read() as connection:
        assert isinstance(connection.transport, Transport)
        assert connection.as_uri().startswith("redis://")


def test_a_sentinel_url_uses_the_project_transport_with_the_same_protections():
    # Not connected: kombu picks the transport by scheme. The failover itself: tests/reliability/test_sentinel.py.
    with Connection("sentinel://127.0.0.1:26379/0", transport_options={"master_name": "broker"}) as connection:
        assert isinstance(connection.transport, SentinelTransport)
        assert issubclass(connection.transport.Channel, ProtectedChannel)
        assert "master_name" in connection.transport.Channel.from_transport_options


def test_metrics_and_queue_depths_follow_a_sentinel_broker_url_to_its_primary():
    # What reads the broker besides kombu (metrics, queue depths, /healthz/) must find the primary too, through a
    # pool the sentinels manage (it looks the primary up again after a failover: tests/reliability/test_sentinel.py).
    topology = SentinelTopology().start()
    try:
        client = broker_redis._client(topology.broker_url, (), 1.0, 1.5, MASTER_NAME)
        assert isinstance(client.connection_pool, SentinelConnectionPool)
        client.set("sentinel-probe", "written")
        assert topology.client(topology.primary()).get("sentinel-probe") == b"written"
        with pytest.raises(ValueError, match="master_name"):
            broker_redis._client(topology.broker_url, (), 1.0, 1.5, None)
    finally:
        topology.stop()


@pytest.mark.django_db(transaction=True)
def test_a_message_that_is_not_json_is_logged_and_dropped_and_the_next_task_runs(celery_workers, caplog):
    caplog.set_level(logging.ERROR, logger="{{ cookiecutter.project_slug }}.taskqueue.patches.kombu")
    broker_redis.client().lpush("default", b"{this is not a message")
    marker = uuid.uuid4().hex
    record_delivery.delay(marker, {})
    assert wait_until(lambda: cache.get(f"delivery:{marker}"), timeout=30, what="the task after the bad message")
    assert "Dropped a malformed message from the broker" in caplog.text
    assert "{this is not a message" in caplog.text


@pytest.mark.parametrize("queues", [["claim-errors"], ["claim-errors", "claim-errors-too"]], ids=["claim", "brpop"])
def test_an_error_the_consumer_raises_is_its_own_not_a_malformed_message(queues, caplog):
    declared = [Queue(name, routing_key=name) for name in queues]
    with celery_app.connection_for_write() as connection:
        connection.Producer().publish({"well": "formed"}, routing_key=queues[0], declare=declared)
        channel = connection.channel()

        def callback(body, message):
            raise KeyError("a bug in the consumer")

        Consumer(channel, queues=declared, callbacks=[callback], no_ack=False).consume()
        assert channel.claims_atomically() == (len(queues) == 1)
        with pytest.raises(KeyError, match="a bug in the consumer"):
            wait_until(lambda: connection.drain_events(timeout=1) or True, timeout=10, what="the delivery")
        assert "malformed" not in caplog.text
        # Received and recorded, as kombu's own transport leaves it: delivered again later, not dropped.
        assert broker_redis.client().hlen("unacked") == 1
        channel.close()


@pytest.mark.parametrize(
    "raw",
    [
        b"{this is not a message",
        b'{"json": "but no envelope"}',
        b'{"body": "!!", "properties": {"delivery_tag": "t", "delivery_info": {}, "body_encoding": "base64"}}',
    ],
    ids=["not-json", "not-an-envelope", "bad-base64-body"],
)
def test_bytes_that_are_no_kombu_envelope_are_malformed(raw):
    with pytest.raises(MalformedMessageError):
        decode_envelope(raw)


def test_the_suites_workers_take_their_messages_through_the_atomic_claim(celery_workers):
    for queue, worker in celery_workers.items():
        channel = worker.consumer.task_consumer.channel
        assert sorted(channel.active_queues) == [queue]
        assert channel.claims_atomically(), channel.atomic_claim_off_because()


@pytest.mark.django_db(transaction=True)
def test_a_task_taken_through_the_claim_is_unacked_while_it_runs_and_acked_after(celery_workers):
    redis = broker_redis.client()
    unacked_before = redis.hlen("unacked")
    marker = uuid.uuid4().hex
    record_delivery.delay(marker, {})
    wait_until(lambda: cache.get(f"delivery:{marker}"), timeout=30, what="the task to run")
    wait_until(lambda: redis.hlen("unacked") == unacked_before, timeout=10, what="its ack")


def test_a_consumer_of_several_queues_says_the_claim_is_off_and_why():
    with celery_app.connection_for_read() as connection:
        channel = connection.channel()
        for name in ("default", "io"):
            Consumer(channel, queues=[celery_app.amqp.queues[name]], no_ack=False).consume()
        assert not channel.claims_atomically()
        (claim, *_) = channel.describe_protections()
        assert not claim.active
        assert "the atomic claim is OFF because it consumes 2 queues (default, io)" in claim.text
        channel.close()


def test_a_global_key_prefix_turns_the_claim_off_and_says_so(redis_url):
    with celery_app.connection_for_read(redis_url, transport_options={"global_keyprefix": "shared:"}) as connection:
        channel = connection.channel()
        Consumer(channel, queues=[celery_app.amqp.queues["default"]], no_ack=False).consume()
        assert channel.atomic_claim_off_because() == "global_keyprefix is set"
        channel.close()


def test_a_server_without_lmove_turns_the_claim_off_and_says_so(redis_url):
    # What Redis before 6.2 answers, here from an ACL user denied the command.
    admin = redis.Redis.from_url(redis_url)
    admin.acl_setuser(
        "no-lmove",
        enabled=True,
        passwords=["+no-lmove-password"],
        keys=["*"],
        channels=["*"],
        commands=["+@all", "-lmove", "-blmove"],
    )
    try:
        user_url = redis_url.replace("redis://", "redis://no-lmove:no-lmove-password@")
        with celery_app.connection_for_read(user_url) as connection:
            channel = connection.channel()
            Consumer(channel, queues=[celery_app.amqp.queues["default"]], no_ack=False).consume()
            assert "the server refuses LMOVE" in channel.atomic_claim_off_because()
            (claim, *_) = channel.describe_protections()
            assert not claim.active
            channel.close()
    finally:
        admin.acl_deluser("no-lmove")


def test_a_worker_consuming_one_queue_takes_its_messages_atomically():
    with celery_app.connection_for_read() as connection:
        channel = connection.channel()
        consumer = Consumer(channel, queues=[celery_app.amqp.queues["default"]], no_ack=False)
        consumer.consume()
        assert channel.claims_atomically()
        # A consumer that does not ack (a `celery inspect` reply queue) has no unacked record to write.
        replies = Consumer(channel, queues=[celery_app.amqp.queues["io"]], no_ack=True)
        replies.consume()
        assert not channel.claims_atomically()
        channel.close()


def test_taking_a_message_records_it_as_unacked_in_the_same_step():
    # A queue of its own: the session's in-process worker consumes the project's queues.
    queue = Queue("claim-test", routing_key="claim-test")
    redis = broker_redis.client()
    with celery_app.connection_for_write() as connection:
        connection.Producer().publish({"claimed": True}, routing_key=queue.routing_key, declare=[queue])
        channel = connection.default_channel
        # What the wait (BLMOVE) does: the message moves onto this consumer's claim list only.
        redis.lmove(queue.name, channel.claim_list(queue.name), "RIGHT", "LEFT")
        raw, tag = channel.claim(queue.name)
    # A worker SIGKILLed right here loses nothing: the message is where Redis redelivers it from.
    assert tag == json.loads(raw)["properties"]["delivery_tag"]
    assert redis.llen(queue.name) == 0
    assert redis.llen(channel.claim_list(queue.name)) == 0
    assert redis.hexists("unacked", tag)
    assert redis.zscore("unacked_index", tag) is not None


def calls(redis_client, command: str) -> int:
    """How many times Redis ran ``command`` since it started (a script's own commands included)."""
    return redis_client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0)


def test_eight_consumers_waiting_on_a_queue_wake_one_claim_per_message():
    """No thundering herd: each message is moved to one waiting consumer's claim list, and claimed once."""
    queue = Queue("herd-test", routing_key="herd-test")
    redis = broker_redis.client()
    delivered = []
    with contextlib.ExitStack() as stack:
        channels = []
        for _ in range(8):
            connection = stack.enter_context(celery_app.connection_for_read())
            channel = connection.channel()
            stack.callback(channel.close)
            Consumer(channel, queues=[queue], callbacks=[lambda body, message: delivered.append(message)]).consume()
            assert channel.claims_atomically(), channel.atomic_claim_off_because()
            channels.append(channel)
        for message_number in range(3):
            for channel in channels:
                # What kombu's poller does before it sends a wait: give the client its connection.
                client = channel.client
                client.connection = client.connection or client.connection_pool.get_connection()
                channel._brpop_start(timeout=1)
            time.sleep(0.2)  # every consumer is waiting
            claims_before = calls(redis, "rpop")
            with celery_app.connection_for_write() as producer:
                producer.Producer().publish({"number": message_number}, routing_key=queue.routing_key, declare=[queue])
            woken = 0
            for channel in channels:
                with contextlib.suppress(Empty):
                    woken += channel._brpop_read()
            assert woken == 1
            # The claim script's RPOP ran once: the other seven consumers were never woken.
            assert calls(redis, "rpop") - claims_before == 1
        assert [message.payload["number"] for message in delivered] == [0, 1, 2]
        for message in delivered:
            message.ack()


@pytest.mark.django_db(transaction=True)
def test_a_dead_consumers_claim_list_goes_back_to_its_queue_and_the_task_runs_once(celery_workers):
    """A worker SIGKILLed between its wait and its claim left a message on its claim list."""
    redis = broker_redis.client()
    marker = uuid.uuid4().hex
    # Sent to a queue nobody consumes, then put where a dead default-queue consumer's wait left it.
    record_delivery.apply_async((marker, {}), queue=Queue("claim-orphans", routing_key="claim-orphans"))
    with celery_app.connection_for_read() as connection:
        channel = connection.default_channel
        dead_claim_list = f"default{CLAIM_SEPARATOR}dead-consumer"
        assert redis.lmove("claim-orphans", dead_claim_list, "RIGHT", "LEFT")
        redis.zadd(channel.claims_key, {dead_claim_list: time.time() - channel.claim_stale_after - 1})
        live_claim_list = f"default{CLAIM_SEPARATOR}live-consumer"
        redis.zadd(channel.claims_key, {live_claim_list: time.time()})
        # kombu's periodic restore, which every worker runs: it gives the dead consumer's message back.
        channel.qos.restore_visible()
    assert redis.zscore(channel.claims_key, dead_claim_list) is None
    assert redis.zscore(channel.claims_key, live_claim_list) is not None  # a live consumer is left alone
    redis.zrem(channel.claims_key, live_claim_list)
    delivery = wait_until(lambda: cache.get(f"delivery:{marker}"), timeout=30, what="the given-back task")
    assert delivery["queue"] == "claim-orphans"
    assert redis.llen(dead_claim_list) == 0
    # Once: nothing of it is left to deliver again.
    wait_until(lambda: not redis.hlen("unacked"), timeout=10, what="its ack")
    assert redis.llen("default") == 0


# A worker SIGKILLed inside kombu's restore sweep: it holds the sweep's lock, taken as kombu takes it. The suite's
# own workers sweep every second and hold the same lock for a moment: wait (10 s at most) until it is free.
SWEEP_AND_DIE = """
import os, signal, sys, time
import redis
from kombu.transport.redis import Mutex, MutexHeld
client, deadline = redis.Redis.from_url(sys.argv[1]), time.monotonic() + 10
while True:
    try:
        with Mutex(client, sys.argv[2], int(sys.argv[3])):
            os.kill(os.getpid(), signal.SIGKILL)
    except MutexHeld:
        if time.monotonic() > deadline:
            sys.exit("the sweep lock stayed held by another sweeper for 10 s")
        time.sleep(0.05)
"""


def test_a_worker_killed_inside_the_restore_sweep_delays_redelivery_by_seconds_not_minutes():
    queue = Queue("sweep-lock-test", routing_key="sweep-lock-test")
    redis_client = broker_redis.client()
    with celery_app.connection_for_write() as connection:
        connection.Producer().publish({"swept": "back"}, routing_key=queue.routing_key, declare=[queue])
        channel = connection.default_channel
        message = channel.basic_get(queue.name, no_ack=False)  # taken, recorded as unacked, never acked
        sweeper = subprocess.run(
            [sys.executable, "-c", SWEEP_AND_DIE, connection.as_uri(include_password=True),
             channel.unacked_mutex_key, str(channel.unacked_mutex_expire)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert sweeper.returncode == -signal.SIGKILL, sweeper.stderr
        assert redis_client.exists(channel.unacked_mutex_key)  # the dead sweeper's lock is left behind
        # Its worker died long ago: the record is older than the visibility timeout. Made so only now, under the
        # lock: before it, the suite's own workers (sweeping every second) would give the message back first.
        long_ago = time.time() - channel.visibility_timeout - 1
        redis_client.zadd(channel.unacked_index_key, {message.delivery_tag: long_ago})
        channel.qos.restore_visible(interval=1)
        assert redis_client.llen(queue.name) == 0  # the lock still stops a live worker's sweep

        def swept() -> bool:
            channel.qos.restore_visible(interval=1)  # each live worker's periodic sweep
            return redis_client.llen(queue.name) == 1

        # Seconds: kombu's default lock (300 s) held it back for five minutes.
        wait_until(swept, timeout=15, interval=0.5, what="the message back in its queue")
    assert not redis_client.hexists(channel.unacked_key, message.delivery_tag)
    redis_client.delete(queue.name)


def test_a_channel_closing_gives_its_claim_list_back_to_the_queue():
    queue = Queue("give-back-test", routing_key="give-back-test")
    redis = broker_redis.client()
    with celery_app.connection_for_write() as connection:
        connection.Producer().publish({"given": "back"}, routing_key=queue.routing_key, declare=[queue])
        channel = connection.channel()
        Consumer(channel, queues=[queue], no_ack=False).consume()
        channel._heartbeat(channel.claim_list(queue.name))
        redis.lmove(queue.name, channel.claim_list(queue.name), "RIGHT", "LEFT")
        channel.close()
    assert redis.llen(channel.claim_list(queue.name)) == 0
    assert redis.llen(queue.name) == 1
    assert redis.zscore(channel.claims_key, channel.claim_list(queue.name)) is None
    redis.delete(queue.name)


def resp(*words: bytes) -> bytes:
    """A command in the Redis protocol, to send on a socket without waiting for its reply."""
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(word), word) for word in words)


def unacknowledged(sock: socket.socket) -> int:
    """Bytes sent on ``sock`` that the peer's kernel has not acknowledged yet (received even by a stopped process)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]


def test_a_message_moved_for_a_wait_whose_reply_was_lost_is_delivered_to_the_live_worker():
    """A wait (BLMOVE) that fails with a connection error is still blocked on the server until Redis notices its
    connection closed. A message pushed before that (a retry published into a stall) is moved onto the claim list,
    and the reply is lost: a fresh-clone CI run's contract test saw the retry never run while the worker lived."""
    server = RedisServer().start()
    queue = Queue("lost-reply-test", routing_key="lost-reply-test")
    delivered: list = []
    options = {"socket_timeout": 0.5, "priority_steps": [0]}
    try:
        client = redis.Redis.from_url(server.url)
        with Connection(server.url, transport_options=options) as connection:
            connection.Producer().publish({"lost": "reply"}, routing_key=queue.routing_key, declare=[queue])
            raw = client.rpop(queue.name)  # the message's bytes, pushed again below as a producer pushes them
            assert isinstance(raw, bytes)
            channel = connection.channel()
            consumer = Consumer(channel, queues=[queue], callbacks=[lambda body, message: delivered.append(message)])
            consumer.consume()
            assert channel.claims_atomically(), channel.atomic_claim_off_because()
            first_claim_list = channel.claim_list(queue.name)

            def wait_once(timeout: float) -> list:
                # What kombu's poller does: give the client its connection, send the wait, read its reply.
                pool = channel.client.connection_pool
                channel.client.connection = channel.client.connection or pool.get_connection()
                channel._brpop_start(timeout=timeout)
                with contextlib.suppress(Empty):
                    channel._brpop_read()
                return delivered

            with socket.create_connection(("127.0.0.1", server.port)) as producer:
                # Both connections known to Redis, and the wait blocked, before it stops: a producer connected but
                # not yet accepted is accepted on resume after the wait's close is read, and the race does not
                # happen (reproduced by connecting the producer during the stall).
                producer.sendall(resp(b"PING"))
                assert producer.recv(64) == b"+PONG\r\n"
                channel.client.connection = channel.client.connection_pool.get_connection()
                channel._brpop_start(timeout=30)
                wait_until(lambda: client.info("clients")["blocked_clients"] == 1, timeout=10, what="the blocked wait")
                with server.stalled():
                    # Read once Redis resumes, before it sees the waiting connection closed: the push must be in
                    # Redis's socket before that connection closes. On a loaded machine the loopback delivery can lag
                    # (a fresh-clone CI run; reproduced under load with 364 bytes still unacknowledged).
                    producer.sendall(resp(b"LPUSH", queue.name.encode(), raw))
                    wait_until(lambda: unacknowledged(producer) == 0, timeout=10, what="the push, in Redis's socket")
                    with pytest.raises(channel.connection_errors):
                        channel._brpop_read()  # the socket timeout, as a stall makes it
                producer.recv(64)  # the push's reply: Redis has run it
            # Redis served the failed wait: the message is on the old claim list, its reply lost.
            assert client.llen(first_claim_list) == 1, "the race did not happen: the test proves nothing"
            wait_until(lambda: wait_once(timeout=0.2), timeout=15, what="the message, delivered by the next waits")
            assert [message.payload for message in delivered] == [{"lost": "reply"}]
            assert channel.claim_list(queue.name) != first_claim_list  # it waits into a new one now
            assert client.llen(first_claim_list) == 0
            delivered[0].ack()
            channel.close()
        assert client.llen(queue.name) == client.hlen("unacked") == 0
        client.close()
    finally:
        server.stop(remove_data=True)


@pytest.mark.django_db(transaction=True)
def test_a_task_sent_to_each_queue_is_taken_by_its_suite_worker_through_the_claim_script(celery_workers):
    redis = broker_redis.client()
    claims_before = calls(redis, "rpop")
    markers = {queue: uuid.uuid4().hex for queue in celery_workers}
    senders = {"default": record_delivery, "io": fetch_delivery, "cpu": build_delivery}
    for queue, marker in markers.items():
        arguments: tuple[Any, ...] = (marker, {}) if queue == "default" else (marker,)
        senders[queue].apply_async(arguments)
    for queue, marker in markers.items():
        delivery = wait_until(partial(cache.get, f"delivery:{marker}"), timeout=30, what=queue)
        assert delivery["queue"] == queue
        channel = celery_workers[queue].consumer.task_consumer.channel
        assert channel.claims_atomically(), channel.atomic_claim_off_because()
        assert channel._claim_lists == {channel.claim_list(queue)}  # it waited into its claim list
    # One claim script (its RPOP of the worker's claim list) per task: none went through kombu's BRPOP.
    assert calls(redis, "rpop") - claims_before == len(markers)


def test_an_ack_through_a_closed_connection_fails_as_a_lost_connection_and_keeps_the_message(caplog):
    queue = Queue("closed-ack-test", routing_key="closed-ack-test")
    with celery_app.connection_for_write() as connection:
        connection.Producer().publish({"acked": False}, routing_key=queue.routing_key, declare=[queue])
        channel = connection.channel()
        message = queue(channel).get(no_ack=False)
        # The state a worker's channel was in when Redis restarted (from a CI traceback): its pool
        # closed, and its connection closed by the reconnect (kombu's Connection.collect()).
        kombu_connection, channel.connection.client = channel.connection.client, None
        channel._disconnect_pools()
        try:
            message.ack_log_error(logging.getLogger(__name__), connection.connection_errors)  # what Celery does
        finally:
            channel.connection.client = kombu_connection
        assert "Couldn't ack" in caplog.text
        # Still recorded as delivered and not acked: Redis delivers it again.
        assert broker_redis.client().hexists("unacked", message.delivery_tag)
        channel.close()

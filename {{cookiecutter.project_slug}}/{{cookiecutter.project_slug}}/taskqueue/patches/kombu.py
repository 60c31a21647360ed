"""kombu's Redis transport, patched so that a worker cannot lose a message it is receiving, and so
that neither a malformed message nor an ack after a reconnect can stop it.

Upstream: kombu 5.7 (tested with 5.7.0, redis-py 8.1, Redis 7.0). ``install()`` makes ``redis://``
and ``rediss://`` broker URLs use this module's ``Transport`` (config/celery_app.py calls it).

What it changes, and the upstream issue each change works around:

1. Receiving is atomic (celery/kombu#305, tasks lost in Redis). kombu pops a message with BRPOP
   and only then records it as unacked (the record Redis delivers again from when the worker
   dies); a worker SIGKILLed between the two loses the message for good. Here the worker waits
   for a message without taking it (BLMOVE of the queue onto itself), then pops it and records
   it as unacked in one Lua script, which Redis runs atomically. This is on for a consumer of a
   single queue that acks its messages (every Procfile worker) on Redis 6.2 or later, with
   ``priority_steps: [0]`` (one Redis list per queue) and no ``global_keyprefix``. Otherwise
   kombu's BRPOP is used, and the worker says so at start with a WARNING (patches/report.py).
2. A malformed message is dropped, not fatal (celery/celery#4308, worker dies if unable to
   decode a message). kombu decodes each message's JSON envelope in the worker's event loop;
   one that is not JSON, or not a kombu envelope, raises there and the worker exits
   ("Unrecoverable error"). Here it is logged and dropped. Only the decoding is guarded: an error
   the consumer itself raises while handling a well-formed message propagates as with kombu.
3. An ack through a closed connection is a connection error (celery/kombu#582, 'NoneType'
   object has no attribute 'hostname'). When a worker loses Redis it closes the connection
   and opens a new one; a task finishing meanwhile acks through the closed one, where kombu
   raises AttributeError and the worker stops. Here it raises redis' ConnectionError: Celery
   logs "Couldn't ack", and Redis delivers the message again (tasks are idempotent).

To remove it: delete this module and the ``install()`` call in config/celery_app.py. The broker
URLs then use kombu's own transport; the tests that pin these behaviours
(tests/taskqueue/test_broker_transport.py, tests/reliability/) show what comes back.
"""

import base64
import binascii
import logging
import time
from dataclasses import dataclass
from functools import cached_property
from queue import Empty

from kombu.transport import TRANSPORT_ALIASES, redis, virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Protection:
    active: bool
    text: str


class MalformedMessageError(ValueError):
    """Bytes on a queue that are not a kombu JSON envelope: no consumer could ever read them."""


def decode_envelope(raw: bytes) -> dict:
    """The kombu envelope in a queued message; MalformedMessageError if it is none.

    Only this decoding is guarded: an error raised while the envelope is delivered to the
    consumer (Celery, a task) is the consumer's and propagates as it does with kombu's transport.
    """
    try:
        envelope = loads(bytes_to_str(raw))
    except ValueError as exc:  # not UTF-8, not JSON
        start = f"; it began {exc.doc[:200]!r}" if isinstance(getattr(exc, "doc", None), str) else ""
        raise MalformedMessageError(f"{type(exc).__name__}: {exc}{start}") from None
    properties = envelope.get("properties") if isinstance(envelope, dict) else None
    if not (
        isinstance(properties, dict)
        and isinstance(properties.get("delivery_tag"), str)
        and isinstance(properties.get("delivery_info"), dict)
        and isinstance(envelope.get("body", ""), str)
        and isinstance(envelope.get("headers") or {}, dict)
    ):
        raise MalformedMessageError(f"JSON, but not a kombu envelope: {bytes_to_str(raw)[:200]!r}")
    if properties.get("body_encoding") == "base64":
        try:
            base64.b64decode(envelope.get("body", ""), validate=True)
        except binascii.Error as exc:
            raise MalformedMessageError(f"its body is not base64: {exc}") from None
    return envelope


# KEYS: the queue's list, kombu's unacked hash and its index; ARGV: the time now. Returns the message and
# its delivery tag if it was recorded. The record is the one kombu writes ([message, exchange, routing key]
# under the delivery tag), so kombu acks, rejects and restores it as its own. A malformed message is
# popped and returned unrecorded: the worker drops it.
CLAIM_SCRIPT = """
local message = redis.call('RPOP', KEYS[1])
if not message then
    return false
end
local decoded, envelope = pcall(cjson.decode, message)
if decoded and type(envelope) == 'table' and type(envelope.properties) == 'table' then
    local tag = envelope.properties.delivery_tag
    local info = envelope.properties.delivery_info
    if type(tag) == 'string' and type(info) == 'table' then
        redis.call('ZADD', KEYS[3], ARGV[1], tag)
        redis.call('HSET', KEYS[2], tag,
            '[' .. message .. ',' .. cjson.encode(info.exchange) .. ',' .. cjson.encode(info.routing_key) .. ']')
        return {message, tag}
    end
end
return {message}
"""


class QoS(redis.QoS):
    def forget(self, delivery_tag: str) -> None:
        """Remove a message's unacked record: Redis will not deliver it again."""
        self._remove_from_indices(delivery_tag).execute()

    def append(self, message, delivery_tag):
        if delivery_tag == self.channel.claimed_tag:
            # The claim script already recorded it as unacked: only the worker's own bookkeeping is left.
            self.channel.claimed_tag = None
            return virtual.QoS.append(self, message, delivery_tag)
        return super().append(message, delivery_tag)


class Channel(redis.Channel):
    QoS = QoS
    _waiting_on = None  # the queue a BLMOVE is waiting on, instead of a BRPOP
    _claim = None  # CLAIM_SCRIPT, registered on first use
    claimed_tag = None  # the delivery tag of the message just claimed, until kombu appends it

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._acked_queues = set()

    def basic_consume(self, queue, no_ack, *args, **kwargs):
        if not no_ack:
            self._acked_queues.add(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def basic_cancel(self, consumer_tag):
        self._acked_queues.discard(self._tag_to_queue.get(consumer_tag))
        return super().basic_cancel(consumer_tag)

    def claims_atomically(self) -> bool:
        """True for a consumer of one queue (one Redis list) that acks its messages: what a worker is."""
        return self.atomic_claim_off_because() is None

    def atomic_claim_off_because(self) -> str | None:
        """Why this channel receives with kombu's BRPOP instead of the atomic claim, or None if it does not."""
        queues = sorted(self.active_queues)
        if not self.ack_emulation:
            return "ack_emulation is off"
        if len(queues) != 1:
            return f"it consumes {len(queues)} queues ({', '.join(queues)}), and the claim waits on one queue"
        if set(queues) - self._acked_queues:
            return "its consumer does not ack"
        if list(self.priority_steps) != [0]:
            return "priority_steps is not [0], so a queue is several Redis lists"
        if self.global_keyprefix:
            return "global_keyprefix is set"
        return self._server_cannot_move

    @cached_property
    def _server_cannot_move(self) -> str | None:
        """None if the server runs LMOVE/BLMOVE (Redis 6.2+), else why not."""
        # LMOVE of a key that does not exist changes nothing; unlike INFO it is allowed to an ACL user
        # without @dangerous, which is what managed Redis services hand out.
        with self.conn_or_acquire() as client:
            try:
                client.execute_command("LMOVE", "_kombu.lmove-probe", "_kombu.lmove-probe", "RIGHT", "RIGHT")
            except ResponseError as exc:
                return f"the server refuses LMOVE ({exc}): it needs Redis 6.2 or later, and the +lmove permission"
        return None

    def describe_protections(self) -> list["Protection"]:
        """One line for the worker's start log: which protections this channel has."""
        queues = ", ".join(sorted(self.active_queues)) or "no queue"
        off = self.atomic_claim_off_because()
        if off is None:
            claim = Protection(
                True,
                f"Broker transport for queue {queues}: a message is taken and recorded "
                "as unacked in one atomic step (a SIGKILL while receiving cannot lose it).",
            )
        else:
            claim = Protection(
                False,
                f"Broker transport for queue(s) {queues}: the atomic claim is OFF because "
                f"{off}; a worker SIGKILLed while it receives a message can lose it. Run one "
                "queue per worker, as the Procfile does.",
            )
        return [
            claim,
            Protection(
                True,
                f"Broker transport for queue(s) {queues}: a malformed message is logged and dropped; "
                "an ack through a closed connection is retried by redelivery.",
            ),
        ]

    def _connparams(self, asynchronous=False):
        if self.connection is None or self.connection.client is None:
            # 3. in the module docstring: an ack through a connection a reconnect closed.
            raise RedisConnectionError("the broker connection this channel belonged to is closed")
        return super()._connparams(asynchronous=asynchronous)

    def _brpop_start(self, timeout=None):
        if not self.claims_atomically():
            return super()._brpop_start(timeout)
        (queue,) = self._queue_cycle.consume(1)
        self._waiting_on = queue
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()
        # Returns the oldest message as soon as there is one, and leaves it where it is.
        wait = timeout if timeout is not None else self.brpop_timeout
        self.client.connection.send_command("BLMOVE", queue, queue, "RIGHT", "RIGHT", wait or 0)

    def _brpop_read(self, **options):
        command = "BRPOP" if self._waiting_on is None else "BLMOVE"
        try:
            try:
                reply = self.client.parse_response(self.client.connection, command, **options)
            except self.connection_errors:
                # As kombu does: the next poll reconnects.
                self.client.connection.disconnect()
                raise
        finally:
            self._in_poll = None
            # What kombu does once the BRPOP connection is idle: flush a streaming re-authentication.
            self._flush_brpop_reauth()
        if not reply:
            self._waiting_on = None
            raise Empty()
        if command == "BRPOP":
            key, raw = reply
            queue = bytes_to_str(key).rsplit(self.sep, 1)[0]
        else:
            queue, self._waiting_on = self._waiting_on, None
            claimed = self.claim(queue)
            if claimed is None:
                raise Empty()  # another worker took it first
            raw, self.claimed_tag = claimed
        self._queue_cycle.rotate(queue)
        try:
            envelope = decode_envelope(raw)
        except MalformedMessageError as exc:
            self._drop(exc)
            return True
        self.connection._deliver(envelope, queue)
        return True

    def _drop(self, exc: MalformedMessageError) -> None:
        """Forget a message nobody can read (2. in the module docstring), and say where it came from."""
        if self.claimed_tag is not None:
            # Recorded as unacked by the claim: Redis must not deliver it again.
            self.qos.forget(self.claimed_tag)
            self.claimed_tag = None
        logger.error("Dropped a malformed message from the broker (not a kombu JSON envelope): %s", exc)

    def claim(self, queue: str) -> tuple[bytes, str | None] | None:
        """Pop the oldest message of ``queue`` and record it as unacked, in one step.

        Returns the message and its delivery tag (None if it was too malformed to record), or None
        if the queue is empty.
        """
        with self.conn_or_acquire() as client:
            if self._claim is None:
                self._claim = client.register_script(CLAIM_SCRIPT)
            claimed = self._claim(
                keys=[queue, self.unacked_key, self.unacked_index_key], args=[time.time()], client=client
            )
        if not claimed:
            return None
        message, *tag = claimed
        return message, bytes_to_str(tag[0]) if tag else None


class Transport(redis.Transport):
    Channel = Channel


def install() -> None:
    """Make ``redis://`` and ``rediss://`` broker URLs use this transport (kombu picks one by URL scheme).

    Registered under the scheme rather than set as CELERY_BROKER_TRANSPORT, so the broker URL
    keeps its ``redis://`` form for Flower and the worker banner.
    """
    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"

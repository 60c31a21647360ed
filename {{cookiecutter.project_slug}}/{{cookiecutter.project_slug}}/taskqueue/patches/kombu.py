"""kombu's Redis transport, patched so that a worker cannot lose a message it is receiving, and so
that neither a malformed message nor an ack after a reconnect can stop it.

Upstream: kombu 5.7 (tested with 5.7.0, redis-py 8.1, Redis 7.0). ``install()`` makes ``redis://``
and ``rediss://`` broker URLs use this module's ``Transport``, and ``sentinel://`` ones its
``SentinelTransport`` (config/celery_app.py calls it): the same protections either way.

What it changes, and the upstream issue each change works around:

1. Receiving is atomic (celery/kombu#305, tasks lost in Redis). kombu pops a message with BRPOP
   and only then records it as unacked (the record Redis delivers again from when the worker
   dies); a worker SIGKILLed between the two loses the message for good. Here the worker waits
   with BLMOVE, which moves the oldest message onto a claim list of the worker's own
   (``<queue>\x06\x16claim\x06\x16<id>``; one consumer gets each message, so 8 workers on a
   queue are not all woken for each one), then one Lua script, which Redis runs atomically, pops
   it off the claim list and records it as unacked. A worker SIGKILLed between the two leaves the
   message on its claim list: each worker keeps a heartbeat for its claim list in the sorted set
   ``unacked_claims``, and the periodic restore that every worker runs moves the messages of a
   claim list whose heartbeat is older than ``claim_stale_after`` seconds back to its queue (oldest
   first, atomically). A worker shutting down cleanly gives its claim list back itself. A wait
   that fails with a connection error (a stalled Redis, a timed-out health check) is still on the
   server, which may move the next message onto the claim list with nobody left to read the reply:
   the worker then waits into a new claim list and gives the old one back (at its next wait, then
   every heartbeat interval until its heartbeat is stale and the restore takes over). This is on
   for a consumer of a single queue that acks its messages (every Procfile worker) on Redis 6.2 or
   later, with ``priority_steps: [0]`` (one Redis list per queue) and no ``global_keyprefix``.
   Otherwise kombu's BRPOP is used, and the worker says so at start with a WARNING
   (patches/report.py).
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

Overridden upstream (kombu/transport/redis.py), to re-read on an upgrade: ``Channel._brpop_start``,
``Channel._brpop_read``, ``Channel.close``, ``Channel.basic_consume``, ``Channel.basic_cancel``,
``Channel._connparams``, ``QoS.append``, ``QoS.restore_visible``; the claim record must stay the one
``QoS.append`` writes.

To remove it: delete this module and the ``install()`` call in config/celery_app.py. The broker
URLs then use kombu's own transport; the tests that pin these behaviours
(tests/taskqueue/test_broker_transport.py, tests/reliability/) show what comes back.
"""

import base64
import binascii
import logging
import time
import uuid
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


# kombu's separator inside key names (as in its priority lists): no queue name contains it.
CLAIM_SEPARATOR = "\x06\x16claim\x06\x16"

# KEYS: this channel's claim list of the queue, kombu's unacked hash and its index; ARGV: the time now.
# Returns the message and its delivery tag if it was recorded. The record is the one kombu writes
# ([message, exchange, routing key] under the delivery tag), so kombu acks, rejects and restores it as
# its own. A malformed message is popped and returned unrecorded: the worker drops it. Nothing on the
# claim list (a restore gave it back to the queue first): false.
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

# KEYS: the claim registry (claim list -> last heartbeat), then claim lists to give back (none: every
# claim list whose heartbeat is older than ARGV[2]); ARGV: the separator, the oldest live heartbeat, a
# limit. Moves each claim list's messages to its queue's right end, the oldest (rightmost) last, so it
# is the next one taken; drops the claim list from the registry. Returns how many messages moved.
GIVE_BACK_SCRIPT = """
local claims = {}
for i = 2, #KEYS do
    claims[#claims + 1] = KEYS[i]
end
if #claims == 0 then
    claims = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[2], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[3]))
end
local moved = 0
for _, claim in ipairs(claims) do
    local at = string.find(claim, ARGV[1], 1, true)
    if at then
        local queue = string.sub(claim, 1, at - 1)
        while redis.call('LMOVE', claim, queue, 'LEFT', 'RIGHT') do
            moved = moved + 1
        end
    end
    redis.call('ZREM', KEYS[1], claim)
end
return moved
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

    def restore_visible(self, *args, **kwargs):
        """kombu's periodic restore of unacked messages, and of the claim lists of dead consumers."""
        super().restore_visible(*args, **kwargs)
        self.channel.restore_stale_claims()


class ProtectedChannel:
    """The protections in the module docstring, over kombu's Redis channel (and its Sentinel channel)."""

    QoS = QoS
    #: Seconds between a consumer's heartbeats for its claim list, at most (sent before a wait, when due).
    claim_heartbeat_interval = 5.0
    #: A claim list whose heartbeat is older than this is a dead consumer's: its messages go back to the queue.
    #: Far above the heartbeat interval plus a wait (kombu's brpop_timeout, 1 s), so a live consumer is never
    #: taken for a dead one; were it, the message would only go back to its queue, never be lost or doubled.
    claim_stale_after = 60.0
    #: Claim lists examined per restore, at most (each holds at most the one message a consumer was taking).
    claim_restore_limit = 100
    _waiting_on = None  # the queue a BLMOVE is waiting on, instead of a BRPOP
    _claim = None  # CLAIM_SCRIPT, registered on first use
    _give_back = None  # GIVE_BACK_SCRIPT, registered on first use
    claimed_tag = None  # the delivery tag of the message just claimed, until kombu appends it

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._acked_queues = set()
        self._claim_id = uuid.uuid4().hex
        self._claim_lists = set()  # every claim list this channel waited into: given back when it closes
        self._abandoned: dict[str, float] = {}  # claim list -> monotonic time its wait failed (see _abandon)
        self._abandoned_checked_at = 0.0  # monotonic time the abandoned claim lists were last given back
        self._heartbeat_at = 0.0  # monotonic time of the last heartbeat
        self._restored_at = 0.0  # monotonic time of the last restore of stale claim lists

    @property
    def claims_key(self) -> str:
        """The sorted set of claim lists and their last heartbeat (next to kombu's ``unacked`` keys)."""
        return f"{self.unacked_key}_claims"

    def claim_list(self, queue: str) -> str:
        return f"{queue}{CLAIM_SEPARATOR}{self._claim_id}"

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
                "as unacked in one atomic step (a SIGKILL while receiving cannot lose it), "
                "by one waiting worker only.",
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
        self._give_back_abandoned()
        claim_list = self.claim_list(queue)
        self._heartbeat(claim_list)
        self._waiting_on = queue
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()
        # Moves the oldest message onto this channel's claim list as soon as there is one: only one of
        # the consumers waiting on the queue gets it.
        wait = timeout if timeout is not None else self.brpop_timeout
        try:
            self.client.connection.send_command("BLMOVE", queue, claim_list, "RIGHT", "LEFT", wait or 0)
        except self.connection_errors:
            self._abandon(queue)  # the command may have reached the server
            raise

    def _abandon(self, queue: str) -> None:
        """The wait on ``queue`` failed with a connection error: wait into a new claim list from now on.

        Redis keeps a blocked BLMOVE until it notices its connection closed, and a message pushed first (during a
        stall, what a retry publish does) is moved onto the claim list with the reply lost. Nobody would claim it,
        and the live worker's heartbeat would keep the restore away from it. The old claim list stops getting
        heartbeats and is given back by this channel (``_give_back_abandoned``) and, past ``claim_stale_after``,
        by any worker's restore; it stays in ``_claim_lists`` for the give-back at close.
        """
        self._abandoned[self.claim_list(queue)] = time.monotonic()
        self._abandoned_checked_at = 0.0  # at the next wait
        self._claim_id = uuid.uuid4().hex

    def _give_back_abandoned(self) -> None:
        """Move what a failed wait left on an abandoned claim list back to its queue, oldest taken next.

        At the first wait after the failure, then at most every heartbeat interval: the server may move the message
        later than the first look. Each LMOVE is atomic, and the claim list stays registered, so whatever arrives
        after the last look is given back by the restore once the list's heartbeat is stale.
        """
        now = time.monotonic()
        if not self._abandoned or now - self._abandoned_checked_at < self.claim_heartbeat_interval:
            return
        moved = 0
        with self.conn_or_acquire() as client:
            for claim_list, since in list(self._abandoned.items()):
                queue = claim_list.split(CLAIM_SEPARATOR, 1)[0]
                while client.lmove(claim_list, queue, "LEFT", "RIGHT"):
                    moved += 1
                if now - since > self.claim_stale_after + self.claim_heartbeat_interval:
                    del self._abandoned[claim_list]  # stale by now: the restore looks after it
        self._abandoned_checked_at = now
        if moved:
            logger.warning(
                "Gave %s message(s) back to their queue that Redis moved for a wait whose reply was lost "
                "(a connection error while waiting): they run next.",
                moved,
            )

    def _heartbeat(self, claim_list: str) -> None:
        """Register the claim list, with the time now, if the last heartbeat is older than the interval."""
        now = time.monotonic()
        if claim_list in self._claim_lists and now - self._heartbeat_at < self.claim_heartbeat_interval:
            return
        with self.conn_or_acquire() as client:
            client.zadd(self.claims_key, {claim_list: time.time()})
        self._claim_lists.add(claim_list)
        self._heartbeat_at = now

    def _brpop_read(self, **options):
        command = "BRPOP" if self._waiting_on is None else "BLMOVE"
        try:
            try:
                reply = self.client.parse_response(self.client.connection, command, **options)
            except self.connection_errors:
                # As kombu does: the next poll reconnects.
                self.client.connection.disconnect()
                if command == "BLMOVE" and self._waiting_on is not None:
                    self._abandon(self._waiting_on)
                    self._waiting_on = None
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
            if queue is None:
                raise Empty()  # a BLMOVE reply with no wait recorded: nothing of this channel's was moved
            # On the connection the wait came back on: the server that moved the message (after a Sentinel
            # failover a pooled connection can still reach the old primary, which knows no such claim).
            claimed = self.claim(queue, client=self.client)
            if claimed is None:
                raise Empty()  # a restore took this consumer for a dead one and gave the message back
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

    def claim(self, queue: str, client=None) -> tuple[bytes, str | None] | None:
        """Pop the oldest message off this channel's claim list of ``queue`` and record it as unacked, in one step.

        Returns the message and its delivery tag (None if it was too malformed to record), or None
        if the claim list is empty.
        """
        with self.conn_or_acquire(client) as client:
            if self._claim is None:
                self._claim = client.register_script(CLAIM_SCRIPT)
            claimed = self._claim(
                keys=[self.claim_list(queue), self.unacked_key, self.unacked_index_key],
                args=[time.time()],
                client=client,
            )
        if not claimed:
            return None
        message, *tag = claimed
        return message, bytes_to_str(tag[0]) if tag else None

    def _run_give_back(self, claim_lists: list[str], client=None) -> int:
        with self.conn_or_acquire(client) as client:
            if self._give_back is None:
                self._give_back = client.register_script(GIVE_BACK_SCRIPT)
            return self._give_back(
                keys=[self.claims_key, *claim_lists],
                args=[CLAIM_SEPARATOR, time.time() - self.claim_stale_after, self.claim_restore_limit],
                client=client,
            )

    def restore_stale_claims(self, force: bool = False) -> int:
        """Give the messages on dead consumers' claim lists back to their queues; how many there were.

        Runs with kombu's periodic restore (QoS.restore_visible), at most once per heartbeat interval.
        """
        now = time.monotonic()
        if not force and now - self._restored_at < self.claim_heartbeat_interval:
            return 0
        if self.global_keyprefix or self._server_cannot_move is not None:
            return 0  # no channel claims there (atomic_claim_off_because), so no claim list to give back
        self._restored_at = now
        moved = self._run_give_back([])
        if moved:
            logger.warning(
                "Gave %s message(s) back to their queue from the claim list of a consumer that stopped "
                "sending heartbeats (it died while taking them).",
                moved,
            )
        return moved

    def close(self):
        if self._in_poll and not self.closed:
            # kombu's close reads a pending reply first; so does this, before giving the claim lists back.
            self._closing = True
            try:
                self._brpop_read()
            except Empty:
                pass
            except self.connection_errors:
                pass
            # Read already: kombu's close must not wait for the same reply a second time.
            self._in_poll = None
        if self._claim_lists and not self.closed:
            try:
                self._run_give_back(sorted(self._claim_lists))
            except self.connection_errors:
                # Redis is gone: a live worker's restore gives them back once their heartbeat is stale.
                logger.debug("Could not give the claim lists back at close", exc_info=True)
            self._claim_lists.clear()
        return super().close()


# Transport options a channel reads, besides kombu's (see ProtectedChannel for what they mean).
CLAIM_OPTIONS = ("claim_heartbeat_interval", "claim_stale_after")


class Channel(ProtectedChannel, redis.Channel):
    from_transport_options = redis.Channel.from_transport_options + CLAIM_OPTIONS


class SentinelChannel(ProtectedChannel, redis.SentinelChannel):
    """The same protections over kombu's Sentinel channel (``sentinel://`` URLs): it finds the primary
    through the sentinels, and then speaks to it as kombu's Redis channel does."""

    from_transport_options = redis.SentinelChannel.from_transport_options + CLAIM_OPTIONS


class Transport(redis.Transport):
    Channel = Channel


class SentinelTransport(redis.SentinelTransport):
    Channel = SentinelChannel


def install() -> None:
    """Make ``redis://``, ``rediss://`` and ``sentinel://`` broker URLs use this module's transports.

    kombu picks a transport by URL scheme; registered under the scheme rather than set as
    CELERY_BROKER_TRANSPORT, so the broker URL keeps its form for Flower and the worker banner.
    """
    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
    TRANSPORT_ALIASES["sentinel"] = f"{__name__}:SentinelTransport"

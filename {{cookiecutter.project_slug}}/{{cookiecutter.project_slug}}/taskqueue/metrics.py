"""Task metrics: what workers record in Redis, and what web's ``/metrics`` renders for Prometheus.

Web and workers run in different containers, so they cannot share a prometheus-client multiprocess
directory. Instead every process adds its counts to hashes in the Redis they already share (under
``metrics:``), and ``/metrics`` reads those hashes, the queues and the database at scrape time with a
custom collector. No prometheus-client state lives in any process: gunicorn workers and prefork
children need no multiprocess mode, and a restarted process loses nothing.

Recorded by Celery signal receivers (connected in TaskQueueConfig.ready() when ``TASK_METRICS`` is on):
received, succeeded, failed, retried and dead-lettered counts and a runtime histogram per task name, and the
retries that could not be published, by where they went (retries.py).
Each process buffers its counts and writes them in one transaction at most every
``TASK_METRICS_FLUSH_INTERVAL`` seconds, so a task costs a dict update, not a Redis round trip.

A run's outcome and its runtime are one event: both are taken from ``task_postrun`` (its ``state``) in one
update of the buffer, written in one MULTI/EXEC and read back in another, so a scrape never shows a run
counted as succeeded, failed or retried without its runtime (a dashboard dividing the runtime sum by the
succeeded count, or a test waiting on one and reading the other, would otherwise see them apart).
``task_failure`` is still counted on its own where no run of the task is traced in the process that
sends it: a worker's main process reporting a child killed by the hard time limit or lost.
Also written: a publish timestamp header on every message (the queue's oldest-message age), one key
per worker and queue refreshed with a TTL (workers online), beat's last tick (the beat scheduler).
"""

import json
import logging
import os
import threading
import time
from collections import Counter, OrderedDict, defaultdict

from celery import bootsteps, states
from celery.signals import (
    before_task_publish,
    task_failure,
    task_postrun,
    task_prerun,
    task_received,
    worker_process_shutdown,
    worker_shutdown,
)
from django.conf import settings

{% if cookiecutter.broker == "rabbitmq" -%}
from {{ cookiecutter.project_slug }}.taskqueue import state_redis
{%- else -%}
from {{ cookiecutter.project_slug }}.taskqueue import broker_redis
{%- endif %}

logger = logging.getLogger(__name__)

PREFIX = "metrics:"
COUNTS_KEY = PREFIX + "task:{event}"  # hash: task name -> count
RUNTIME_KEY = PREFIX + "task:runtime"  # hash: "<task>|<bucket index>", "<task>|sum", "<task>|count"
WORKER_KEY = PREFIX + "worker:{queue}:{hostname}"  # a key per consuming worker, expires unless refreshed
BEAT_TICK_KEY = PREFIX + "beat:last-tick"  # Unix time of beat's last tick
PUBLISHED_AT_HEADER = "published_at"
EVENTS = ("received", "succeeded", "failed", "retried", "dead_lettered")
# A retry that could not be published, by task and by where it went (retries.py): its hash's fields are
# "<task>|<outcome>".
RETRY_UNPUBLISHED = "retry_unpublished"
# Seconds; no-op tasks take microseconds, report builds tens of seconds.
RUNTIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
WORKER_PRESENCE_INTERVAL = 10  # seconds between refreshes; the key lives three times as long
FAILURES_REMEMBERED = 1000  # deliveries whose failure was counted: a second report of one is not counted again


def redis():
{%- if cookiecutter.broker == "rabbitmq" %}
    # The state Redis (REDIS_STATE_URL): cache.clear() never deletes these counts.
    return state_redis.client()
{%- else %}
    # The broker's Redis: its queues are there, and cache.clear() never deletes these counts.
    return broker_redis.client()
{%- endif %}


def bucket_index(seconds: float) -> int:
    for index, bound in enumerate(RUNTIME_BUCKETS):
        if seconds <= bound:
            return index
    return len(RUNTIME_BUCKETS)  # +Inf


class Recorder:
    """This process's counts since its last flush; flushed by a daemon thread and at shutdown."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts: Counter = Counter()  # (event, task) -> n
        self.runtime: defaultdict[tuple[str, str], float] = defaultdict(float)  # (task, field) -> n or seconds
        # A run's start, by (task id, thread): a retry keeps its task id, and on a thread pool its next run can
        # start (and end) while the run that sent it is still finishing.
        self.started: dict[tuple[str, int], float] = {}
        self.failed_deliveries: OrderedDict[tuple, None] = OrderedDict()  # (task id, delivery tag)
        self.flusher: threading.Thread | None = None
        self.flusher_pid = None
        # A prefork child (forked again whenever one is recycled) starts empty: the parent's unflushed counts
        # are the parent's to write, and its lock may have been held by the parent's flusher at the fork.
        os.register_at_fork(after_in_child=self.reset_after_fork)

    def reset_after_fork(self) -> None:
        self.lock = threading.Lock()
        self.counts, self.runtime, self.started = Counter(), defaultdict(float), {}
        self.failed_deliveries = OrderedDict()

    def first_failure_of(self, delivery: tuple) -> bool:
        """True the first time a delivery's failure is reported (the last FAILURES_REMEMBERED are kept)."""
        with self.lock:
            if delivery in self.failed_deliveries:
                return False
            self.failed_deliveries[delivery] = None
            if len(self.failed_deliveries) > FAILURES_REMEMBERED:
                self.failed_deliveries.popitem(last=False)
            return True

    def count(self, event: str, task: str) -> None:
        with self.lock:
            self.counts[(event, task)] += 1
        self.after_event()

    def count_unpublished_retry(self, task: str, outcome: str) -> None:
        self.count(RETRY_UNPUBLISHED, f"{task}|{outcome}")

    def finish(self, task: str, seconds: float, outcome: str | None) -> None:
        """A run ended: its runtime and its outcome (None for a run that ignored or rejected its message)."""
        with self.lock:
            self.runtime[(task, str(bucket_index(seconds)))] += 1
            self.runtime[(task, "sum")] += seconds
            self.runtime[(task, "count")] += 1
            if outcome is not None:
                self.counts[(outcome, task)] += 1
        self.after_event()

    def after_event(self) -> None:
        interval = settings.TASK_METRICS_FLUSH_INTERVAL
        if interval <= 0:
            self.flush()
            return
        # Started lazily in each process (prefork children are forked without the parent's threads).
        if self.flusher_pid != os.getpid():
            self.flusher_pid = os.getpid()
            self.flusher = threading.Thread(target=self.flush_every, args=(interval,), daemon=True)
            self.flusher.start()

    def flush_every(self, interval: float) -> None:
        while True:
            time.sleep(interval)
            self.flush()

    def flush(self) -> None:
        with self.lock:
            counts, runtime = self.counts, self.runtime
            self.counts, self.runtime = Counter(), defaultdict(float)
        if not counts and not runtime:
            return
        try:
            pipe = redis().pipeline(transaction=True)  # MULTI/EXEC: a scrape sees all of this flush or none
            for (event, task), n in counts.items():
                pipe.hincrby(COUNTS_KEY.format(event=event), task, n)
            for (task, field), amount in runtime.items():
                if field == "sum":
                    pipe.hincrbyfloat(RUNTIME_KEY, f"{task}|sum", amount)
                else:
                    pipe.hincrby(RUNTIME_KEY, f"{task}|{field}", int(amount))
            pipe.execute()
        except Exception as exc:  # metrics must never fail a task
            # Kept for the next flush: a Redis that stalls or restarts is when these counts matter most. A
            # transaction that Redis applied but whose reply was lost is then counted twice.
            with self.lock:
                self.counts.update(counts)
                for key, amount in runtime.items():
                    self.runtime[key] += amount
            logger.warning("Could not write task metrics to Redis, kept for the next flush: %s", exc)


recorder = Recorder()


def _name(sender=None) -> str:
    return getattr(sender, "name", None) or "?"


def on_publish(sender=None, headers=None, **extra):
    if headers is not None:
        headers.setdefault(PUBLISHED_AT_HEADER, time.time())


def on_received(sender=None, request=None, **extra):
    # The worker's Request: its name is the task's name (its .task is the Task object).
    recorder.count("received", getattr(request, "name", None) or "?")


def on_prerun(sender=None, task_id=None, **extra):
    recorder.started[(task_id, threading.get_ident())] = time.perf_counter()


# The run's final state, as task_postrun reports it, and the counter it moves (IGNORED and REJECTED move none;
# a rejected message's failure comes as task_failure from the worker, after the run).
OUTCOMES = {states.SUCCESS: "succeeded", states.FAILURE: "failed", states.RETRY: "retried"}


def on_postrun(sender=None, task_id=None, state=None, **extra):
    started = recorder.started.pop((task_id, threading.get_ident()), None)
    if started is not None:
        recorder.finish(_name(sender), time.perf_counter() - started, OUTCOMES.get(state))


def on_failure(sender=None, task_id=None, **extra):
    # A failure raised in a run this process traces is counted by on_postrun, with its runtime. Counted here:
    # the failures a worker's main process reports for a run it could not trace (hard time limit, child lost,
    # a message rejected without requeue), once per delivery: celery 5.7 sends task_failure twice for a child
    # killed at its hard time limit (Request.on_timeout since celery/celery#10226, then Request.on_failure).
    if (task_id, threading.get_ident()) in recorder.started:
        return
    delivery_info = getattr(getattr(sender, "request", None), "delivery_info", None) or {}
    if recorder.first_failure_of((task_id, delivery_info.get("delivery_tag"))):
        recorder.count("failed", _name(sender))


def on_dead_letter(sender=None, instance=None, created=False, **extra):
    if created:
        recorder.count("dead_lettered", instance.task_name)


def on_shutdown(**extra):
    recorder.flush()


def connect() -> None:
    """Connect the receivers (TaskQueueConfig.ready()); task outcomes only when TASK_METRICS is on.

    The publish timestamp is always added: a queue's oldest-message age needs it, whatever the workers record.
    """
    from django.db.models.signals import post_save

    from {{ cookiecutter.project_slug }}.taskqueue.models import FailedTask

    before_task_publish.connect(on_publish, weak=False, dispatch_uid="metrics.publish")
    if not settings.TASK_METRICS:
        return
    task_received.connect(on_received, weak=False, dispatch_uid="metrics.received")
    task_prerun.connect(on_prerun, weak=False, dispatch_uid="metrics.prerun")
    task_postrun.connect(on_postrun, weak=False, dispatch_uid="metrics.postrun")
    task_failure.connect(on_failure, weak=False, dispatch_uid="metrics.failure")
    post_save.connect(on_dead_letter, sender=FailedTask, weak=False, dispatch_uid="metrics.dead_letter")
    worker_process_shutdown.connect(on_shutdown, weak=False, dispatch_uid="metrics.process_shutdown")
    worker_shutdown.connect(on_shutdown, weak=False, dispatch_uid="metrics.shutdown")


class WorkerPresence(bootsteps.StartStopStep):
    """A consumer step: while the worker consumes, one key per (queue, worker) that expires unless refreshed."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self.stopped = threading.Event()
        # Held by a refresh and by stop: a refresh under way when the worker stops cannot write the keys again
        # after stop deleted them (they would then say the worker consumes for another 30 s).
        self.writing = threading.Lock()
        self.keys: list[str] = []

    def start(self, c):
        queues = [queue.name for queue in c.task_consumer.queues]
        self.keys = [WORKER_KEY.format(queue=queue, hostname=c.hostname) for queue in queues]
        self.stopped.clear()
        self.refresh()
        threading.Thread(target=self.refresh_until_stopped, daemon=True).start()

    def refresh(self) -> None:
        with self.writing:
            if self.stopped.is_set():
                return
            try:
                pipe = redis().pipeline(transaction=False)
                for key in self.keys:
                    pipe.set(key, int(time.time()), ex=WORKER_PRESENCE_INTERVAL * 3)
                pipe.execute()
            except Exception as exc:
                logger.warning("Could not record this worker's presence in Redis: %s", exc)

    def refresh_until_stopped(self) -> None:
        while not self.stopped.wait(WORKER_PRESENCE_INTERVAL):
            self.refresh()

    def stop(self, c):
        with self.writing:
            self.stopped.set()
            try:
                if self.keys:
                    redis().delete(*self.keys)
            except Exception as exc:
                logger.warning("Could not remove this worker's presence from Redis: %s", exc)

    shutdown = stop


def record_beat_tick() -> None:
    """Called by the beat scheduler after every tick that worked."""
    try:
        redis().set(BEAT_TICK_KEY, time.time())
    except Exception as exc:
        logger.warning("Could not record beat's tick in Redis: %s", exc)


# Read at scrape time (web) and by the admin's queues page.


def queue_names() -> list[str]:
    return [queue.name for queue in settings.CELERY_TASK_QUEUES]


def oldest_age(raw: bytes | None, now: float) -> float | None:
    """Seconds since the message was published; None if there is none or it has no timestamp."""
    if raw is None:
        return None
    try:
        published = json.loads(raw).get("headers", {}).get(PUBLISHED_AT_HEADER)
        return max(0.0, now - float(published))
    except (ValueError, TypeError, AttributeError):
        return None


{% if cookiecutter.broker == "rabbitmq" -%}
def queue_depths(names: list[str]) -> dict[str, int]:
    """Messages ready in each queue, from RabbitMQ: a passive declare per queue (it creates nothing) on one
    connection from the app's pool. A queue that does not exist yet (no worker or declare_queues ran) counts 0."""
    from config.celery_app import app  # at call time: the app is configured by then

    depths = {}
    with app.connection_for_read() as connection:
        for name in names:
            # A failed passive declare closes its channel: one channel per queue.
            with connection.channel() as channel:
                try:
                    depths[name] = channel.queue_declare(queue=name, passive=True).message_count
                except connection.channel_errors:  # NOT_FOUND (404): the queue is not declared yet
                    depths[name] = 0
    return depths


def queue_states() -> list[dict]:
    """Per queue: messages ready (RabbitMQ's count; it keeps no publish time a reader can see), workers."""
    names = queue_names()
    depths = queue_depths(names)
    workers: dict[str, list[str]] = {name: [] for name in names}
    for key in redis().scan_iter(match=WORKER_KEY.format(queue="*", hostname="*"), count=1000):
        _, _, queue, hostname = key.decode().split(":", 3)
        workers.setdefault(queue, []).append(hostname)
    return [
        {"name": name, "depth": depths[name], "oldest_age": None, "workers": sorted(workers.get(name, []))}
        for name in names
    ]
{%- else -%}
def queue_states() -> list[dict]:
    """Per queue: depth, age of the message consumed next (kombu takes from the list's right end), workers."""
    client = redis()
    names = queue_names()
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.llen(name)
        pipe.lindex(name, -1)
    replies = pipe.execute()
    workers: dict[str, list[str]] = {name: [] for name in names}
    for key in client.scan_iter(match=WORKER_KEY.format(queue="*", hostname="*"), count=1000):
        _, _, queue, hostname = key.decode().split(":", 3)
        workers.setdefault(queue, []).append(hostname)
    now = time.time()
    return [
        {
            "name": name,
            "depth": replies[2 * index],
            "oldest_age": oldest_age(replies[2 * index + 1], now),
            "workers": sorted(workers.get(name, [])),
        }
        for index, name in enumerate(names)
    ]
{%- endif %}


def beat_seconds_since_tick() -> float | None:
    raw = redis().get(BEAT_TICK_KEY)
    return None if raw is None else max(0.0, time.time() - float(raw))


def dead_letters_waiting() -> int:
    from {{ cookiecutter.project_slug }}.taskqueue.models import FailedTask

    return FailedTask.objects.filter(replayed_at__isnull=True).count()


def task_counts_and_runtimes() -> tuple[dict[str, dict[str, int]], dict[str, dict]]:
    """The counters per event and task (and per "<task>|<outcome>" for RETRY_UNPUBLISHED), and the runtime
    histograms, read in one MULTI/EXEC (as flushed)."""
    pipe = redis().pipeline(transaction=True)
    for event in (*EVENTS, RETRY_UNPUBLISHED):
        pipe.hgetall(COUNTS_KEY.format(event=event))
    pipe.hgetall(RUNTIME_KEY)
    *count_replies, runtime_reply = pipe.execute()
    counts = {
        event: {task.decode(): int(n) for task, n in reply.items()}
        for event, reply in zip((*EVENTS, RETRY_UNPUBLISHED), count_replies, strict=True)
    }
    return counts, runtime_histograms(runtime_reply)


def unpublished_retries() -> dict[str, int]:
    """Retries that could not be published, by where they went (retries.KEPT, retries.DEAD_LETTER)."""
    totals: dict[str, int] = {}
    for field, n in redis().hgetall(COUNTS_KEY.format(event=RETRY_UNPUBLISHED)).items():
        outcome = field.decode().rsplit("|", 1)[1]
        totals[outcome] = totals.get(outcome, 0) + int(n)
    return totals


def runtime_histograms(reply: dict[bytes, bytes]) -> dict[str, dict]:
    histograms: dict[str, dict] = {}
    for field, value in reply.items():
        task, part = field.decode().rsplit("|", 1)
        histogram = histograms.setdefault(task, {"buckets": [0] * (len(RUNTIME_BUCKETS) + 1), "sum": 0.0})
        if part == "sum":
            histogram["sum"] = float(value)
        elif part != "count":
            histogram["buckets"][int(part)] = int(value)
    return histograms


class TaskQueueCollector:
    """A prometheus-client collector that computes everything at scrape time (see the module docstring)."""

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        states = queue_states()
        length = GaugeMetricFamily("celery_queue_length", "Messages waiting in the queue", labels=["queue"])
        age = GaugeMetricFamily(
            "celery_queue_oldest_message_age_seconds",
            "Seconds since the next message to be consumed was published (absent: empty queue or no timestamp)",
            labels=["queue"],
        )
        workers = GaugeMetricFamily("celery_queue_workers", "Workers consuming the queue", labels=["queue"])
        for state in states:
            length.add_metric([state["name"]], state["depth"])
            if state["oldest_age"] is not None:
                age.add_metric([state["name"]], state["oldest_age"])
            workers.add_metric([state["name"]], len(state["workers"]))
        yield from (length, age, workers)

        counts, histograms = task_counts_and_runtimes()
        for event in EVENTS:
            family = CounterMetricFamily(f"celery_task_{event}", f"Tasks {event.replace('_', '-')}", labels=["task"])
            for task, n in sorted(counts[event].items()):
                family.add_metric([task], n)
            yield family
        unpublished = CounterMetricFamily(
            f"celery_task_{RETRY_UNPUBLISHED}",
            "Retries that could not be published: kept (back to the queue) or dead_letter",
            labels=["task", "outcome"],
        )
        for field, n in sorted(counts[RETRY_UNPUBLISHED].items()):
            unpublished.add_metric(field.rsplit("|", 1), n)
        yield unpublished

        runtime = HistogramMetricFamily("celery_task_runtime_seconds", "Task run time", labels=["task"])
        for task, histogram in sorted(histograms.items()):
            cumulative, buckets = 0, []
            for bound, n in zip((*RUNTIME_BUCKETS, float("inf")), histogram["buckets"], strict=True):
                cumulative += n
                buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
            runtime.add_metric([task], buckets, histogram["sum"])
        yield runtime

        since_tick = beat_seconds_since_tick()
        if since_tick is not None:
            yield GaugeMetricFamily("celery_beat_seconds_since_tick", "Seconds since beat's last tick", since_tick)
        yield GaugeMetricFamily("celery_dead_letters_waiting", "Dead letters not replayed", dead_letters_waiting())

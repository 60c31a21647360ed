{% if cookiecutter.broker == "rabbitmq" -%}
"""Three changes to Celery's worker: the request of every project task, the threads pool, and the consumer.
{%- else -%}
"""Two changes to Celery's worker: the request of every project task, and the threads pool.
{%- endif %}

Upstream: celery 5.7 (tested with 5.7.0). pyproject.toml caps celery there.

1. ``TimeLimitRequest`` (every project task's ``Request``, set in base_task.py). When a prefork child is
   killed at its hard time limit, celery/worker/request.py ``Request.on_timeout`` runs the task's
   ``on_failure`` and the ``task_failure`` signal (since celery/celery#10226) in the worker's main process
   without pushing the killed request's context, so ``task.request`` there is the main process's empty
   one: no queue, retries 0 (``Request.on_failure``, for a lost child, does push it). The dead letter
   recorded then (dead_letters.py) had the wrong queue and retry count. This pushes the context around the upstream
   handler. ``Request.on_failure`` does the same for a message the task rejected without requeue
   (``Reject(requeue=False)``, whose ``task_failure`` it sends without the context since celery/celery#4222's
   fix): its dead letter (signals.py) gets the queue and retries too.

2. ``ThreadsTaskPool`` (``-P threads``, registered under that alias by ``install()``). Celery's threads
   pool cannot stop a task: it has no ``terminate_job`` (celery/celery#10490, fix proposed in
   celery/celery#10491), so a cold shutdown, which cancels the tasks still running after the soft
   shutdown window, raises NotImplementedError and the worker dies in an "Unrecoverable error"; and its
   ``on_stop`` waits for every thread, so one call hung in a thread holds the process until SIGKILL.
   Here, in a cold shutdown only, a cancelled task is left running (no thread can be killed) with its
   message unacked, which the broker connection's close returns to its queue (kombu's
   ``restore_at_shutdown``); the pool stops without waiting, and if a task thread is still alive when
   the worker has finished shutting down, the process exits without joining it. A warm shutdown still
   waits for every task, as upstream. ``on_apply`` is upstream's with one change: each thread is marked
   while it runs a task, as the executor's threads stay alive between tasks.
{%- if cookiecutter.broker == "rabbitmq" %}

3. ``DeadLetteringConsumer`` (``CELERY_WORKER_CONSUMER``, config/settings/base.py). A message whose body cannot be
   decoded (not JSON, a wrong content encoding) is logged and acked by celery/worker/consumer/consumer.py
   ``Consumer.on_decode_error`` "so it doesn't enter a loop": gone, with a log line as its only trace, while the
   other bad messages (no Celery headers, an unknown task, a refused serializer) are rejected and so reach the
   queues' dead-letter exchange. Here it is rejected without requeue too, after the same log line: RabbitMQ keeps it
   in the ``dead-letters`` queue (``x-death`` reason ``rejected``), where it cannot loop.
{%- endif %}

To remove it: once ``Request.on_timeout`` pushes ``self._context`` itself, drop ``Request`` from
base_task.py; once Celery's threads pool implements ``terminate_job`` and a bounded cold stop, drop
``patched_celery_worker.install()`` from config/celery_app.py;{% if cookiecutter.broker == "rabbitmq" %} once ``on_decode_error`` rejects without requeue,
drop ``CELERY_WORKER_CONSUMER`` from the settings;{% endif %} then delete this module.
"""

import logging
import os
import sys
import threading

from celery import concurrency
from celery.concurrency import thread
from celery.concurrency.base import apply_target
from celery.exceptions import Reject
from celery.signals import worker_ready
from celery.worker import state
{%- if cookiecutter.broker == "rabbitmq" %}
from celery.worker.consumer import consumer as upstream_consumer
{%- endif %}
from celery.worker.request import ExceptionWithTraceback, Request  # billiard's, as Celery imports it
{%- if cookiecutter.broker == "rabbitmq" %}
from kombu.utils.encoding import safe_repr
{%- endif %}

logger = logging.getLogger("{{ cookiecutter.project_slug }}.taskqueue.patches")

THREADS_POOL = f"{__name__}:ThreadsTaskPool"
{%- if cookiecutter.broker == "rabbitmq" %}
DEAD_LETTERING_CONSUMER = f"{__name__}:DeadLetteringConsumer"
{%- endif %}
# The exit status of a worker that left a hung task thread behind (its message was returned to the queue).
EXIT_WITH_ABANDONED_THREADS = 1


class TimeLimitRequest(Request):
    def on_failure(self, exc_info, send_failed_event=True, return_ok=False):
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        if not isinstance(exc, Reject) or exc.requeue:
            return super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)
        self.task.request_stack.push(self._context)
        try:
            return super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)
        finally:
            self.task.request_stack.pop()

    def on_timeout(self, soft, timeout):
        if soft:
            return super().on_timeout(soft, timeout)
        # The failure handlers read task.request: make it the killed request's, as on_failure does.
        self.task.request_stack.push(self._context)
        try:
            return super().on_timeout(soft, timeout)
        finally:
            self.task.request_stack.pop()


class ThreadsTaskPool(thread.TaskPool):
    def on_start(self):
        super().on_start()
        # The executor's threads outlive their tasks (idle, waiting for the next): only these are running one.
        self._running: set[threading.Thread] = set()
        self._running_lock = threading.Lock()
        # Runs at interpreter exit before concurrent.futures joins the executor's threads (reverse order).
        # Private: the only hook that runs before that join (typeshed does not list it).
        threading._register_atexit(self._exit_without_joining_hung_threads)  # type: ignore[attr-defined]

    def on_apply(self, target, args=None, kwargs=None, callback=None, accept_callback=None, **_):
        # Upstream's body, with apply_target run through _run_marked.
        future = self.executor.submit(self._run_marked, target, args, kwargs, callback, accept_callback)
        return thread.ApplyResult(future)

    def _run_marked(self, *call):
        me = threading.current_thread()
        with self._running_lock:
            self._running.add(me)
        try:
            return apply_target(*call)
        finally:
            with self._running_lock:
                self._running.discard(me)

    def terminate_job(self, pid, signal=None):
        # Called for each task still running when a cold shutdown cancels them: none can be interrupted.
        logger.warning(
            "A task thread cannot be stopped: it is left running, and its message goes back to the queue "
            "when this worker closes its broker connection."
        )

    def on_stop(self):
        if not state.should_terminate:
            # Warm shutdown: wait for the running tasks, as upstream does.
            return super().on_stop()
        # Cold: the tasks still running were cancelled and their messages go back to the queue; upstream's
        # shutdown(cancel_futures=True) would wait for them, however long one hangs.
        self.executor.shutdown(wait=False, cancel_futures=True)
        return thread.BasePool.on_stop(self)

    def _hung_threads(self) -> list[threading.Thread]:
        # An idle thread that has not yet seen the executor's shutdown is not hung (that race made a worker whose
        # task had finished exit 1).
        with self._running_lock:
            return [worker for worker in self._running if worker.is_alive()]

    def _exit_without_joining_hung_threads(self):
        hung = self._hung_threads()
        if not hung or not state.should_terminate:
            return
        logger.warning(
            "Exiting with %d task thread(s) still running; their messages were returned to the queue.", len(hung)
        )
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_WITH_ABANDONED_THREADS)


{% if cookiecutter.broker == "rabbitmq" -%}
class DeadLetteringConsumer(upstream_consumer.Consumer):
    def on_decode_error(self, message, exc):
        # Upstream's log line, word for word (operators search for it), then a reject instead of its ack.
        upstream_consumer.logger.critical(
            upstream_consumer.MESSAGE_DECODE_ERROR,
            exc,
            message.content_type,
            message.content_encoding,
            safe_repr(message.headers),
            upstream_consumer.dump_body(message, message.body),
            exc_info=1,
        )
        logger.error("Rejected the undecodable message: RabbitMQ keeps it in the dead-letter queue.")
        message.reject_log_error(logger, self.connection_errors, requeue=False)


{% endif -%}
def install() -> None:
    """Make ``-P threads`` (the Procfile's io worker) use ThreadsTaskPool."""
    concurrency.ALIASES["threads"] = THREADS_POOL


{% if cookiecutter.broker == "rabbitmq" -%}
@worker_ready.connect
def report_consumer(sender=None, **kwargs):
    if isinstance(sender, DeadLetteringConsumer):
        logger.info("Undecodable messages are rejected into the dead-letter queue (patches/celery_worker.py).")
    else:
        logger.warning(
            "Consumer without the project's patch: a message whose body cannot be decoded is acked and lost "
            "(patches/celery_worker.py; CELERY_WORKER_CONSUMER)."
        )


{% endif -%}
@worker_ready.connect
def report_pool(sender=None, **kwargs):
    pool = getattr(sender, "pool", None)
    if isinstance(pool, thread.TaskPool):
        if isinstance(pool, ThreadsTaskPool):
            logger.info(
                "Threads pool: a task still running after the soft shutdown is returned to its queue and the "
                "worker exits (patches/celery_worker.py)."
            )
        else:
            logger.warning(
                "Threads pool without the project's patch: a cold shutdown fails on a running task and a hung "
                "task holds the worker until SIGKILL (patches/celery_worker.py)."
            )

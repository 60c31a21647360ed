"""Record what Celery's signals report in this process, for tests to assert on.

Covers the messages the test process sends and everything the in-process workers (the
``celery_workers`` fixture, threads of this process) do with them: which queue a task
came from, how many times it started, retried, failed, or was dropped as expired.
"""

import threading
import time
from dataclasses import dataclass, field

from celery.signals import (
    after_task_publish,
    task_failure,
    task_prerun,
    task_retry,
    task_revoked,
    task_success,
)

from {{ cookiecutter.project_slug }}.taskqueue.deliveries import queue_of
from tests.support.waiting import wait_until


@dataclass(frozen=True)
class TaskEvent:
    kind: str  # published | started | retried | failed | succeeded | revoked
    task: str
    task_id: str
    queue: str | None = None
    args: tuple = ()
    detail: object = None  # the exception when failed; True when revoked because it expired
    at: float = field(default_factory=time.monotonic)


class TaskEvents:
    def __init__(self):
        self._events: list[TaskEvent] = []
        self._lock = threading.Lock()
        self._receivers = [
            (after_task_publish, self._published),
            (task_prerun, self._started),
            (task_retry, self._retried),
            (task_failure, self._failed),
            (task_success, self._succeeded),
            (task_revoked, self._revoked),
        ]

    def __enter__(self) -> "TaskEvents":
        for signal, receiver in self._receivers:
            signal.connect(receiver, weak=False)
        return self

    def __exit__(self, *exc_info) -> None:
        for signal, receiver in self._receivers:
            signal.disconnect(receiver)

    def _add(self, event: TaskEvent) -> None:
        with self._lock:
            self._events.append(event)

    def _published(self, sender=None, headers=None, body=None, routing_key=None, **kwargs):
        args = tuple(body[0]) if isinstance(body, list | tuple) and body else ()
        queue = queue_of({"routing_key": routing_key})
        self._add(TaskEvent("published", sender, headers["id"], queue=queue, args=args))

    def _started(self, sender=None, task_id=None, args=None, **kwargs):
        queue = queue_of(sender.request.delivery_info)
        self._add(TaskEvent("started", sender.name, task_id, queue=queue, args=tuple(args or ())))

    def _retried(self, sender=None, request=None, reason=None, **kwargs):
        self._add(TaskEvent("retried", sender.name, request.id, detail=reason))

    def _failed(self, sender=None, task_id=None, exception=None, **kwargs):
        self._add(TaskEvent("failed", sender.name, task_id, detail=exception))

    def _succeeded(self, sender=None, **kwargs):
        self._add(TaskEvent("succeeded", sender.name, sender.request.id))

    def _revoked(self, sender=None, request=None, expired=False, **kwargs):
        self._add(TaskEvent("revoked", getattr(sender, "name", None) or request.task, request.id, detail=expired))

    def of(self, task: str, kind: str | None = None, task_id: str | None = None) -> list[TaskEvent]:
        with self._lock:
            return [
                event
                for event in self._events
                if event.task == task
                and (kind is None or event.kind == kind)
                and (task_id is None or event.task_id == task_id)
            ]

    def wait_for(self, task: str, kind: str, count: int = 1, timeout: float = 30.0) -> list[TaskEvent]:
        """Wait until ``task`` has ``count`` events of ``kind``; return them."""
        return wait_until(
            lambda: len(self.of(task, kind)) >= count and self.of(task, kind),
            timeout=timeout,
            what=lambda: f"{count} {kind!r} event(s) of {task}; its events: {self.kinds_of(task) or 'none'}",
        )

    def kinds_of(self, task: str) -> str:
        """The events of ``task`` so far, in order, e.g. "published, started, retried, started"."""
        return ", ".join(event.kind for event in self.of(task))

"""The base class of every task in the project (the app's ``task_cls``, set in config/celery_app.py).

It derives from Celery's Django task class, so ``delay_on_commit()`` and ``apply_async_on_commit()``
send a task once the current transaction commits. It adds three things a task author should not
have to remember:

- arguments are checked against the task function's annotations before it runs, so a message
  with a wrongly typed argument fails once, clearly, and is never retried (arguments.py);
- a task that fails for good (permanent error, or retries exhausted) is recorded as a
  :class:`~{{ cookiecutter.project_slug }}.taskqueue.models.FailedTask`, a dead letter a person can see in the
  admin and replay with ``manage.py replay_failed_tasks`` (dead_letters.py);
- a message whose runs keep dying with their process (a poison message) is failed after
  ``max_deliveries`` runs instead of being delivered forever (deliveries.py);
- a retry that cannot be published is never dropped: its message goes back to the queue, or the task
  becomes a dead letter with the reason (retries.py).
"""

import logging
from functools import cached_property

from celery.contrib.django.task import DjangoTask
from celery.exceptions import Reject

from {{ cookiecutter.project_slug }}.taskqueue.arguments import ArgumentSpec, UnresolvableAnnotationError
from {{ cookiecutter.project_slug }}.taskqueue.deliveries import count_delivery, forget_deliveries
from {{ cookiecutter.project_slug }}.taskqueue.retries import unpublished_retry

logger = logging.getLogger(__name__)


class BaseTask(DjangoTask):
    # A hard-time-limit kill's dead letter gets the killed request's queue and retries (patches/celery_worker.py).
    Request = "{{ cookiecutter.project_slug }}.taskqueue.patches.celery_worker:TimeLimitRequest"
    # Runs of one message that may die with their process (OOM, segfault) before it counts as poison.
    max_deliveries = 5

    def before_start(self, task_id, args, kwargs):
        # Outside the autoretry wrapper: these fail the task once, without retries.
        count_delivery(self)
        self.check_arguments(args, kwargs)

    def after_return(self, status, retval, task_id, args, kwargs, einfo):
        if isinstance(retval, Reject) and retval.requeue:
            return  # its message goes back to the queue: the next run is counted as a redelivery of it
        # The run ended (success, failure or retry): the message is done with, so is its delivery count.
        forget_deliveries(self)

    def retry(self, *args, **kwargs):
        try:
            return super().retry(*args, **kwargs)
        except Reject as reject:
            # Celery 5.7 raises Reject(<the publish's exception>, requeue=False) when the retry's publish fails,
            # and nothing else in retry() rejects: the message would be acked and the task lost.
            if reject.requeue or not isinstance(reject.reason, Exception):
                raise
            raise unpublished_retry(self, reject.reason) from reject.reason

    @cached_property
    def argument_spec(self) -> ArgumentSpec:
        """What check_arguments() checks; only the signature if the annotations cannot be resolved."""
        try:
            return ArgumentSpec.of(self.run)
        except UnresolvableAnnotationError as exc:
            # `manage.py check` reports this task (celery.E008); until it is fixed, only its signature is checked.
            logger.warning(
                "%s: argument types are not checked, its annotations cannot be resolved: %s", self.name, exc
            )
            return ArgumentSpec.signature_only(self.run)

    def check_arguments(self, args, kwargs) -> None:
        """Raise TypeError unless the arguments fit the task function's signature and JSON annotations."""
        self.argument_spec.check(self.name, args, kwargs)

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        # Imported here: this module is loaded with the Celery app, before Django's apps are ready.
        from {{ cookiecutter.project_slug }}.taskqueue.dead_letters import record_failure

        try:
            record_failure(task=self, task_id=task_id, args=args, kwargs=kwargs, exc=exc, traceback=str(einfo))
        except Exception:  # recording must never hide the task's own failure
            logger.exception("Could not record the failure of %s[%s]", self.name, task_id)

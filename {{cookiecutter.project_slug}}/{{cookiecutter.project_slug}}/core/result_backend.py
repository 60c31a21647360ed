"""The result backend: django-celery-results' database backend, made safe for chords whose header tasks retry or rerun.

A chord sends its callback when the last of its header tasks finishes. The stock backend
can miss that moment in two ways, and the report pipeline (reports/fan_in.py) is exposed to both:

1. A late RETRY overwrites SUCCESS. ``Task.retry()`` sends the new attempt's message first and
   stores RETRY afterwards; with a short countdown, the new attempt can finish in between (the
   io worker's threads run it at once). RETRY then replaces SUCCESS, the header is not "ready"
   when the last task checks, and the callback is never sent: the generated test suite caught a
   report whose page fetch had retried waiting forever. Here a state that is not final never
   replaces a final one; the check and the write happen under the result row's lock.
2. A header task that runs twice counts twice. With late acks a task runs again if its worker
   dies after storing its result but before acking (P9, P34); the counter then reaches 0 while
   another header task is still running, and the stock backend deletes it without sending the
   callback. Here 0 means "check": the callback is sent once every header result is final, by
   whichever header task sees that first under the counter's lock, and exactly once.
"""

from celery import states
from celery.canvas import maybe_signature
from django.db import router, transaction
from django_celery_results.backends.database import DatabaseBackend as StockDatabaseBackend
from django_celery_results.backends.database import trigger_callback
from django_celery_results.models import ChordCounter


class DatabaseBackend(StockDatabaseBackend):
    def _store_result(self, task_id, result, status, traceback=None, request=None, using=None):
        if status in states.READY_STATES:
            return super()._store_result(task_id, result, status, traceback, request, using)
        # RETRY or STARTED: written only if no attempt has finished yet (see 1. above).
        database = using or router.db_for_write(self.TaskModel)
        results = self.TaskModel._default_manager.db_manager(database)
        with transaction.atomic(using=database):
            results.get_or_create(task_id=task_id)  # a row to lock, even for the task's first state
            stored = results.select_for_update().filter(task_id=task_id).values_list("status", flat=True).get()
            if stored in states.READY_STATES:
                return result
            return super()._store_result(task_id, result, status, traceback, request, using)

    def on_chord_part_return(self, request, state, result, **kwargs):
        if not request.group or not request.id:
            return  # not part of a chord
        database = router.db_for_write(ChordCounter)
        with transaction.atomic(using=database):
            counter = ChordCounter.objects.using(database).select_for_update().filter(group_id=request.group).first()
            if counter is None:
                return  # the callback has been sent already: this header task ran twice (see 2. above)
            counter.count -= 1
            header = counter.group_result(app=self.app)
            if counter.count > 0 or not header.ready():
                counter.save(update_fields=["count"])
                return
            counter.delete()
        trigger_callback(app=self.app, callback=maybe_signature(request.chord, app=self.app), group_result=header)

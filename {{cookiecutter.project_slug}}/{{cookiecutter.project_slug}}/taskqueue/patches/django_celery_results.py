"""django-celery-results' database result backend, safe for chords whose header tasks retry or run twice.

Upstream: django-celery-results 2.6 (tested with 2.6.0, Celery 5.7). ``CELERY_RESULT_BACKEND``
names this module's ``DatabaseBackend``.

A chord sends its callback when the last of its header tasks finishes. The stock backend can
miss that moment in two ways, both of which a fan-out of retrying page fetches meets:

1. A late RETRY overwrites SUCCESS (celery/celery#2405: chord callback runs, or never runs,
   while a header task retries). ``Task.retry()`` sends the new attempt's message first and
   stores RETRY afterwards; with a short countdown, the new attempt can finish in between, and
   RETRY then replaces SUCCESS: the header is not "ready" when the last task checks, and the
   callback is never sent. Here a state that is not final never replaces a final one; the check
   and the write happen under the result row's lock.
2. A header task that runs twice counts twice (celery/django-celery-results#397). With late acks
   a task runs again if its worker dies after storing its result but before acking; the counter
   then reaches 0 while another header task still runs, and the stock backend deletes it without
   sending the callback. Here 0 means "check": the callback is sent once every header result is
   final, by whichever header task sees that first under the counter's lock, and exactly once.

It also makes the ``celery`` command line work with this backend (``celery -A config.celery_app
result <id>``): that command does not set Django up before it loads the backend, whose models
need the app registry. Loading this module sets Django up when nobody has yet.

To remove it: set ``CELERY_RESULT_BACKEND = "django-db"``. The tests in
tests/taskqueue/test_result_backend.py then show the chords that lose their callback.
"""

import django
from django.apps import apps

if not apps.ready and not apps.loading:
    django.setup()  # the celery command line, outside any Django process: see above

# The models need the app registry, set up just above.
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

"""Tasks the harness's own tests hold to their contracts: one that keeps its promise, and two that break it.

Their effect is a row of the reliability ledger (tests/reliability/ledger.py) per key. Loaded by the harness's
workers only for tests/contracts/test_harness.py.
"""

import logging
import uuid

from celery import shared_task
from django.db import OperationalError, connection

from tests.reliability import ledger

logger = logging.getLogger(__name__)


# As the README's checklist says: retry what is transient, with backoff (the first retry waits at most 1 s).
RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": True, "retry_jitter": True, "max_retries": 3}


@shared_task(name="contracts.record_payment", bind=True, **RETRY)
def record_payment(self, key: str) -> None:
    """Idempotent: the effect and its idempotency key commit together; a transient database error retries."""
    ledger.apply_effect_once(key, uuid.uuid4().hex)


@shared_task(name="contracts.fetch_payment", bind=True, io_timeout=5, **RETRY)
def fetch_payment(self, key: str) -> None:
    """record_payment on the io queue (a threads pool: a kill takes the whole worker)."""
    ledger.apply_effect_once(key, uuid.uuid4().hex)


@shared_task(name="contracts.record_payment_blindly", **RETRY)
def record_payment_blindly(key: str) -> None:
    """Not idempotent: every run inserts its effect, with no key to find a previous one."""
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO reliability_effect (run_id, task_key) VALUES (%s, %s)", [uuid.uuid4().hex, key])


@shared_task(name="contracts.record_payment_quietly")
def record_payment_quietly(key: str) -> None:
    """Swallows its own failure: an error is logged, the task succeeds, and the work is lost."""
    try:
        ledger.apply_effect_once(key, uuid.uuid4().hex)
    except Exception:
        logger.exception("Could not record the payment %s", key)

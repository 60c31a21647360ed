"""Fixtures of the task queue tests."""

from typing import Any

import pytest

from config.celery_app import app as celery_app


@pytest.fixture
def celery_conf():
    """Change the live Celery configuration for one test, then put it back."""
    conf = celery_app.conf
    saved: dict[str, Any] = {}

    def change(**values):
        for key, value in values.items():
            saved.setdefault(key, conf[key])
            conf[key] = value

    yield change
    for key, value in saved.items():
        conf[key] = value

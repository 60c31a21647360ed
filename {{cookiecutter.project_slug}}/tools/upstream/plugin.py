"""pytest plugin loaded into an upstream test suite (``-p plugin``): substitutes the generated project's classes.

It runs inside the upstream package's own test tree (kombu's, django-celery-results', django-celery-beat's
``t/``), in a virtualenv built from the generated project's requirements plus the upstream test requirements.
Environment:

- ``UPSTREAM_SUITE``: ``kombu``, ``results`` or ``beat``: which classes to substitute;
- ``UPSTREAM_PROJECT``: the generated project's package (``{{ cookiecutter.project_slug }}``), importable from the
  working directory's ``sys.path`` (PYTHONPATH);
- ``UPSTREAM_EXCLUSIONS``: exclusions.toml; ``UPSTREAM_SECTION``: its section for this run;
- ``UPSTREAM_REPORT``: where to write the JSON report check.py reads;
- ``UPSTREAM_SHARD``: ``i/n``, to split one suite over n concurrent processes;
- ``UPSTREAM_TRANSPORT_OPTIONS``: JSON, kombu transport options every Connection gets by default.

Substitution is by the public names of the project's patch modules, never by their internals: the upstream
module attribute (``kombu.transport.redis.Transport``, ``django_celery_beat.schedulers.DatabaseScheduler``,
``django_celery_results.backends.database.DatabaseBackend``) is rebound to the project's subclass before the
upstream test modules import it, so every ``from ... import Transport`` and every upstream test subclass gets the
project's class. Each project class counts its instances, and the report carries the counts: a run in which the
project's classes were never instantiated proves nothing, and check.py fails it.
"""

from __future__ import annotations

import json
import os
import sys
import time
import tomllib
from collections import Counter
from importlib import import_module
from pathlib import Path

import pytest

SUITE = os.environ.get("UPSTREAM_SUITE", "")
PROJECT = os.environ.get("UPSTREAM_PROJECT", "")

instances: Counter[str] = Counter()
substituted: dict[str, str] = {}
transport_defaults: dict = {}
outcomes: dict[str, str] = {}
exclusions: dict[str, dict[str, str]] = {}
collected: list[str] = []
started = time.monotonic()


def count_instances(cls: type) -> None:
    """Wrap ``cls.__init__`` so every instance (of it or of a subclass) is counted; behaviour unchanged."""
    own = cls.__dict__.get("__init__")
    name = f"{cls.__module__}.{cls.__qualname__}"

    def __init__(self, *args, **kwargs):
        instances[name] += 1
        if own is not None:
            own(self, *args, **kwargs)
        else:
            super(cls, self).__init__(*args, **kwargs)  # type: ignore[arg-type]  # cls is the class counted

    setattr(cls, "__init__", __init__)  # noqa: B010  # an instance counter around the class's own __init__


def rebind(module, attribute: str, replacement: type) -> None:
    stock = getattr(module, attribute)
    if not (isinstance(replacement, type) and issubclass(replacement, stock)):
        raise pytest.UsageError(f"{replacement!r} is not a subclass of {module.__name__}.{attribute} ({stock!r})")
    count_instances(replacement)
    setattr(module, attribute, replacement)
    substituted[f"{module.__name__}.{attribute}"] = f"{replacement.__module__}.{replacement.__qualname__}"


def substitute_kombu() -> None:
    import kombu.transport.redis as stock
    from kombu.transport import TRANSPORT_ALIASES

    patch = import_module(f"{PROJECT}.taskqueue.patches.kombu")
    for name in ("QoS", "Channel", "Transport"):
        rebind(stock, name, getattr(patch, name))
    for name in ("SentinelChannel", "SentinelTransport"):  # if the project patches sentinel:// too
        if hasattr(patch, name):
            rebind(stock, name, getattr(patch, name))
    # UPSTREAM_TRANSPORT_OPTIONS: defaults under every Connection's own transport_options, as the project's
    # CELERY_BROKER_TRANSPORT_OPTIONS are (priority_steps [0] is what switches its atomic receive on).
    defaults = json.loads(os.environ.get("UPSTREAM_TRANSPORT_OPTIONS") or "{}")
    if defaults:
        import kombu.connection

        original = kombu.connection.Connection.__init__

        def __init__(self, *args, transport_options=None, **kwargs):
            original(self, *args, transport_options={**defaults, **(transport_options or {})}, **kwargs)  # type: ignore[misc]

        setattr(kombu.connection.Connection, "__init__", __init__)  # noqa: B010  # defaults under every Connection's
        transport_defaults.update(defaults)
    # Connection("redis://...") resolves the transport by URL scheme, as the project's install() arranges.
    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = f"{patch.__name__}:Transport"


def substitute_results() -> None:
    import django_celery_results.backends as package
    import django_celery_results.backends.database as stock

    patch = import_module(f"{PROJECT}.taskqueue.patches.django_celery_results")
    rebind(stock, "DatabaseBackend", patch.DatabaseBackend)
    package.DatabaseBackend = patch.DatabaseBackend
    substituted["django_celery_results.backends.DatabaseBackend"] = substituted[
        "django_celery_results.backends.database.DatabaseBackend"
    ]


def substitute_beat() -> None:
    import django_celery_beat.schedulers as stock

    patch = import_module(f"{PROJECT}.taskqueue.patches.django_celery_beat")
    rebind(stock, "DatabaseScheduler", patch.HeartbeatDatabaseScheduler)


SUBSTITUTIONS = {"kombu": substitute_kombu, "results": substitute_results, "beat": substitute_beat}


def pytest_configure(config: pytest.Config) -> None:
    if SUITE not in SUBSTITUTIONS or not PROJECT:
        raise pytest.UsageError("set UPSTREAM_SUITE (kombu, results or beat) and UPSTREAM_PROJECT")
    table = tomllib.loads(Path(os.environ["UPSTREAM_EXCLUSIONS"]).read_text())
    exclusions.update(table.get(os.environ["UPSTREAM_SECTION"], {}))
    config.addinivalue_line("markers", "upstream_excluded: listed in tools/upstream/exclusions.toml")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    # After pytest-django's django.setup() (pytest_configure), before any upstream test module is imported.
    if SUITE in ("results", "beat"):
        import django
        from django.apps import apps

        if not apps.ready:
            django.setup()
    SUBSTITUTIONS[SUITE]()


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Listed ``xfail`` tests must fail (strict: one that passes is a stale exclusion); ``deselect`` ones don't run."""
    keep, drop = [], []
    for item in items:
        collected.append(item.nodeid)
        entry = exclusions.get(item.nodeid)
        if entry is None:
            keep.append(item)
        elif entry["how"] == "deselect":
            drop.append(item)
        else:
            item.add_marker(pytest.mark.xfail(strict=True, reason=entry["why"]))
            keep.append(item)
    # UPSTREAM_SHARD=i/n: this process runs every n-th remaining test, from the i-th (the others run the rest).
    index, count = (int(part) for part in os.environ.get("UPSTREAM_SHARD", "0/1").split("/"))
    items[:] = keep[index::count]
    if drop:
        config.hook.pytest_deselected(items=drop)


@pytest.fixture(autouse=True)
def _fresh_beat_lock():
    """For the beat suite: each upstream test models one beat, so no beat lock is left from an earlier test."""
    if SUITE == "beat":
        from django.core.cache import cache

        cache.delete(import_module(f"{PROJECT}.taskqueue.patches.django_celery_beat").BEAT_LOCK_KEY)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.outcome != "passed":
        outcome: str = "xfailed" if hasattr(report, "wasxfail") and report.skipped else report.outcome
        if report.when != "call" and report.outcome == "failed":
            outcome = "error"
        # A test whose setup failed or was skipped has no call phase; keep its first non-passing outcome.
        if report.nodeid not in outcomes or outcomes[report.nodeid] == "passed":
            outcomes[report.nodeid] = outcome


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    report = {
        "suite": SUITE,
        "python": sys.version,
        "substituted": substituted,
        "instances": dict(instances),
        "transport_options": transport_defaults,
        "collected": collected,
        "outcomes": outcomes,
        "seconds": round(time.monotonic() - started, 1),
    }
    Path(os.environ["UPSTREAM_REPORT"]).write_text(json.dumps(report, indent=1))

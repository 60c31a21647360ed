"""Replacements of upstream classes, one module per patched package.

Each module says in its docstring which versions it was tested with, which upstream issue it
works around, what it changes and how to remove it once upstream has fixed the issue:

{% if cookiecutter.broker == "redis" -%}
- ``kombu.py``: kombu's Redis transport (the broker connection of every worker and sender);
{% endif -%}
- ``celery_worker.py``: Celery's worker request (hard time limits) and threads pool (soft shutdown);
- ``django_celery_beat.py``: django-celery-beat's ``DatabaseScheduler`` (beat);
{%- if cookiecutter.result_backend == "django-db" %}
- ``django_celery_results.py``: django-celery-results' database result backend.
{%- endif %}

They subclass upstream classes and override private methods, so they are bound to the minor
versions below: ``pyproject.toml`` caps each package there, a test fails when an installed
version is outside them, and a worker logs at start which patches are on and which are off.
"""

from importlib.metadata import PackageNotFoundError, version

# Package -> the minor version the patches were written against and tested with.
TESTED_MINOR_VERSIONS = {
    "celery": "5.7",
{%- if cookiecutter.broker == "redis" %}
    "kombu": "5.7",
{%- endif %}
    "django-celery-beat": "2.9",
    "django-celery-results": "2.6",
}


def installed_minor_version(package: str) -> str | None:
    try:
        return ".".join(version(package).split(".")[:2])
    except PackageNotFoundError:
        return None


def untested_versions() -> dict[str, tuple[str, str]]:
    """Installed packages whose minor version differs from the tested one: package -> (installed, tested)."""
    found = {}
    for package, tested in TESTED_MINOR_VERSIONS.items():
        installed = installed_minor_version(package)
        if installed is not None and installed != tested:
            found[package] = (version(package), tested)
    return found

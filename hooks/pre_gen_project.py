"""Validate every answer before cookiecutter writes a single file.

On a bad answer: print which field, the value given and what would be valid,
then exit 1. Cookiecutter removes nothing because nothing was written yet.
"""

from __future__ import annotations

import keyword
import re
import sys
import zoneinfo

ANSWERS = {
    "project_name": """{{ cookiecutter.project_name }}""",
    "project_slug": """{{ cookiecutter.project_slug }}""",
    "email": """{{ cookiecutter.email }}""",
    "domain_name": """{{ cookiecutter.domain_name }}""",
    "timezone": """{{ cookiecutter.timezone }}""",
    "include_examples": """{{ cookiecutter.include_examples }}""",
    "use_flower": """{{ cookiecutter.use_flower }}""",
    "use_sentry": """{{ cookiecutter.use_sentry }}""",
    "use_kubernetes": """{{ cookiecutter.use_kubernetes }}""",
    "broker": """{{ cookiecutter.broker }}""",
}

# Names the generated project imports or creates: a slug equal to one of them would shadow it.
SHADOWED = {
    "celery", "django", "redis", "kombu", "amqp", "billiard", "environ", "flower", "gunicorn", "psycopg",
    "whitenoise", "sentry_sdk", "django_redis", "django_celery_beat", "django_celery_results",
    "config", "test", "tests", "tools", "docs", "conftest", "manage", "pytest", "yaml",
}  # fmt: skip
SLUG = re.compile(r"^[a-z][a-z0-9_]*$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# y/n answers are free text to cookiecutter; its list choices (result_backend, ci_tool) it checks
# itself, before this hook runs (tests/test_hooks.py).
CHOICES = {
    "include_examples": ("y", "n"),
    "use_flower": ("y", "n"),
    "use_sentry": ("y", "n"),
    "use_kubernetes": ("y", "n"),
}


def validate_slug(slug: str) -> str | None:
    if not SLUG.match(slug):
        return "must be a lowercase Python identifier: a letter, then letters, digits or underscores"
    if keyword.iskeyword(slug) or keyword.issoftkeyword(slug):
        return "is a Python keyword"
    if slug in SHADOWED or slug in sys.stdlib_module_names:
        return "would shadow a module the project imports; pick a more specific name"
    return None


def validate_email(email: str) -> str | None:
    return None if EMAIL.match(email) else "must look like an address, e.g. you@example.com"


def validate_domain(domain: str) -> str | None:
    labels = domain.lower().split(".")
    if len(domain) > 253 or len(labels) < 2 or not all(HOST_LABEL.match(label) for label in labels):
        return "must be a host name such as example.com (letters, digits, hyphens, dots; no scheme or path)"
    return None


def validate_timezone(name: str) -> str | None:
    if name in zoneinfo.available_timezones():
        return None
    return "must be an IANA time zone name such as UTC, Europe/Paris or America/New_York"


def validate(answers: dict[str, str]) -> list[str]:
    problems = []
    validators = {
        "project_slug": validate_slug,
        "email": validate_email,
        "domain_name": validate_domain,
        "timezone": validate_timezone,
    }
    if not answers["project_name"].strip():
        problems.append("project_name: must not be empty")
    for field, check in validators.items():
        reason = check(answers[field])
        if reason:
            problems.append(f"{field}: {answers[field]!r} {reason}")
    for field, allowed in CHOICES.items():
        if answers[field] not in allowed:
            problems.append(f"{field}: {answers[field]!r} is not one of {', '.join(allowed)}")
    return problems


if __name__ == "__main__":
    errors = validate(ANSWERS)
    if errors:
        print("ERROR: cannot generate the project; nothing was written.", file=sys.stderr)
        for error in errors:
            print(f"  - {error}", file=sys.stderr)
        sys.exit(1)

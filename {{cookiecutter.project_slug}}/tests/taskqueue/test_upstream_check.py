"""tools/upstream/check.py (`make upstream-check`): how it judges a suite's reports, and its arguments.

The check itself (upstream's suites in a virtualenv of their own) is run by the template's tests, at the installed
versions and against an older kombu; these hold the verdict it draws from the suites' reports.
"""

import importlib.util

import pytest

from tools.upstream.check import PACKAGE, SUITES, declared, evaluate, parse, project_suites

SUITE = next(suite for suite in SUITES if suite.name == "kombu-unit")
LISTED = {
    "t/test_x.py::test_known_failure": {"how": "xfail", "why": "fails with upstream's class too"},
    "t/test_x.py::test_needs_amqp": {"how": "deselect", "why": "needs a broker the check does not start"},
}


def report(**outcomes: str) -> dict:
    collected = ["t/test_x.py::test_ok", "t/test_x.py::test_known_failure", "t/test_x.py::test_needs_amqp"]
    return {
        "outcomes": {"t/test_x.py::test_ok": "passed", "t/test_x.py::test_known_failure": "xfailed"}
        | {f"t/test_x.py::{name}": outcome for name, outcome in outcomes.items()},
        "collected": collected,
        "instances": {f"{PACKAGE}.taskqueue.patches.kombu.Channel": 3},
        "seconds": 1.0,
        "substituted": dict.fromkeys(SUITE.substituted, f"{PACKAGE}.taskqueue.patches.kombu.X"),
        "transport_options": {},
    }


def test_a_suite_whose_tests_pass_or_fail_as_listed_holds():
    line, problems = evaluate(SUITE, [report()], LISTED)
    assert problems == []
    assert line.startswith("1 passed, 1 xfailed (listed), 1 deselected (listed), of 3; 3 instances")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"test_ok": "failed"}, "test_ok failed, expected passed"),
        ({"test_ok": "error"}, "test_ok error, expected passed"),
        ({"test_ok": "skipped"}, "test_ok skipped, expected passed"),
        ({"test_known_failure": "passed"}, "test_known_failure passed, expected xfailed"),  # a stale xfail
        ({"test_needs_amqp": "passed"}, "deselected tests ran"),
    ],
)
def test_any_other_outcome_fails_the_suite(change, problem):
    _line, problems = evaluate(SUITE, [report(**change)], LISTED)
    assert any(problem in found for found in problems), problems


def test_an_exclusion_upstream_no_longer_has_fails_the_suite():
    listed = LISTED | {"t/test_x.py::test_gone": {"how": "xfail", "why": "was failing"}}
    _line, problems = evaluate(SUITE, [report()], listed)
    assert problems == ["kombu-unit: exclusions.toml lists tests upstream no longer has: ['t/test_x.py::test_gone']"]


def test_a_run_that_did_not_use_the_projects_classes_proves_nothing():
    unsubstituted = report() | {"substituted": {}, "instances": {"kombu.transport.redis.Channel": 3}}
    _line, problems = evaluate(SUITE, [unsubstituted], LISTED)
    assert any("not substituted" in problem for problem in problems), problems
    assert any("never instantiated" in problem for problem in problems), problems


def test_a_shard_without_a_report_or_with_tests_unrun_fails_the_suite():
    _line, problems = evaluate(SUITE, [report(), None], LISTED)
    assert problems == ["kombu-unit shard 1 wrote no report (its output is in the work directory)"]
    unfinished = report()
    del unfinished["outcomes"]["t/test_x.py::test_ok"]
    _line, problems = evaluate(SUITE, [unfinished], LISTED)
    assert problems == ["kombu-unit: 1 collected tests have no outcome (a shard stopped early?)"]


def test_a_version_is_chosen_only_for_the_packages_the_patches_override(capsys):
    assert parse(["kombu==5.8.0", "--only", "kombu-unit"]).requirements == ["kombu==5.8.0"]
    with pytest.raises(SystemExit):
        parse(["redis==6.0.0"])
    assert "expected NAME==VERSION with NAME one of kombu, celery" in capsys.readouterr().err


def test_it_checks_the_patched_packages_this_project_depends_on_and_the_suites_of_its_patches():
    # The result backend's patch exists only in a project generated with the database result backend.
    results = importlib.util.find_spec(f"{PACKAGE}.taskqueue.patches.django_celery_results") is not None
    assert declared() == ["kombu", "celery", "django-celery-beat"] + (["django-celery-results"] if results else [])
{%- if cookiecutter.broker == "rabbitmq" %}
    # No kombu suite: RabbitMQ's transport is kombu's own, not patched.
    assert {suite.name for suite in project_suites()} == {"beat"} | ({"results"} if results else set())
{%- else %}
    assert {suite.name for suite in project_suites()} == {
        "kombu-unit", "kombu-integration", "kombu-integration-project-options", "beat"
    } | ({"results"} if results else set())  # fmt: skip
{%- endif %}

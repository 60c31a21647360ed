"""The sample apps' option-dependent parts: the report fan-in exists in one form per result backend."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("backend", ["django-db", "redis"])
def test_with_a_result_backend_the_report_fans_in_with_a_chord(bake, backend):
    project = bake(result_backend=backend)
    reports, tests = project / "my_project/examples/reports", project / "tests/examples/reports"
    assert "from celery import chord" in (reports / "fan_in.py").read_text()
    assert (tests / "test_fan_in.py").exists()
    assert not (reports / "fan_in_without_results.py").exists()
    assert not (tests / "test_fan_in_without_results.py").exists()


def test_without_a_result_backend_the_report_fans_in_through_a_redis_set(bake):
    project = bake(result_backend="none")
    reports, tests = project / "my_project/examples/reports", project / "tests/examples/reports"
    fan_in = (reports / "fan_in.py").read_text()
    assert "import chord" not in fan_in
    assert ".sadd(" in fan_in
    assert "without a result backend" in (tests / "test_fan_in.py").read_text()
    assert not (reports / "fan_in_without_results.py").exists()
    assert not (tests / "test_fan_in_without_results.py").exists()


def test_readme_points_at_the_fan_in_the_project_has(bake):
    assert "a chord" in (bake() / "README.md").read_text()
    assert "a Redis set instead of a chord" in (bake(result_backend="none") / "README.md").read_text()

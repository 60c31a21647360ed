"""Measure the project's real workers: `python manage.py celery_bench` (docs/performance.md quotes its figures)."""

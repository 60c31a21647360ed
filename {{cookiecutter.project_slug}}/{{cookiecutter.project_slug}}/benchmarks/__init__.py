"""Measure the project's real workers: `python manage.py celery_bench` (README "Performance")."""

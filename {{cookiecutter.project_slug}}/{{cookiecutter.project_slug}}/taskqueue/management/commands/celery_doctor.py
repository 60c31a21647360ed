from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from {{ cookiecutter.project_slug }}.taskqueue import doctor


class Command(BaseCommand):
    help = (
        "Check the services this deploy runs against, with the workers' own settings: the broker Redis "
        "(noeviction, persistence, every command the project uses allowed to its user), the cache Redis's "
        "user, the database's connection limit against every process definition's worst case, the workers' "
        "shutdown windows and the probes. With --workers, also that a live worker consumes each declared "
        "queue. One line per check; exits 1 on any error. compose/migrate runs it before migrating."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--workers", action="store_true", help="Also require a live worker on every declared queue."
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=0.0,
            help="With --workers: seconds to wait for the workers to come up (default: ask once).",
        )

    def handle(self, *args, workers=False, wait=0.0, **options):
        findings = doctor.run(Path(settings.BASE_DIR), workers=workers, wait=wait)
        style = {doctor.OK: self.style.SUCCESS, doctor.WARNING: self.style.WARNING, doctor.ERROR: self.style.ERROR}
        for finding in findings:
            stream = self.stdout if finding.level == doctor.OK else self.stderr
            stream.write(style[finding.level](finding.line()))
        errors = sum(finding.level == doctor.ERROR for finding in findings)
        warnings = sum(finding.level == doctor.WARNING for finding in findings)
        summary = f"celery_doctor: {len(findings)} checks, {errors} errors, {warnings} warnings."
        if errors:
            raise CommandError(summary, returncode=1)
        self.stdout.write(summary)

from django.core.management.base import BaseCommand

from {{ cookiecutter.project_slug }}.taskqueue.periodic import sync_periodic_tasks


class Command(BaseCommand):
    help = (
        "Create the periodic tasks declared in each app's schedules.py in django-celery-beat's tables. "
        "Idempotent; run it on every deploy after migrate. A task changed in the admin is kept (with a "
        "warning) unless --force is given; a task this command created whose declaration is gone (removed "
        "or renamed) is deleted. Tasks made in the admin are never touched."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--force", action="store_true", help="Reset periodic tasks that differ from the code to the code."
        )

    def handle(self, *args, force=False, **options):
        for spec, outcome in sync_periodic_tasks(force=force):
            line = f"{outcome:9} {spec.name} ({spec.task}, {spec.cron})"
            if outcome == "kept":
                self.stderr.write(
                    self.style.WARNING(
                        f"{line}: differs from the code, probably edited in the admin; not overwritten. "
                        "Run with --force to reset it."
                    )
                )
            else:
                self.stdout.write(line)

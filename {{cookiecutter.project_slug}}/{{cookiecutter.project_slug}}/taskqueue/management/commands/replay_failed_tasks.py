from django.core.management.base import BaseCommand, CommandError

from {{ cookiecutter.project_slug }}.taskqueue.dead_letters import replay
from {{ cookiecutter.project_slug }}.taskqueue.models import FailedTask


class Command(BaseCommand):
    help = (
        "Send failed tasks (dead letters, also listed in the admin) again with their original arguments. "
        "Select them by id, or every not-yet-replayed failure of one task with --task."
    )

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", type=int, help="FailedTask ids (see the admin)")
        parser.add_argument("--task", help="Replay every failure of this task name not replayed yet")
        parser.add_argument("--again", action="store_true", help="Also replay failures that were replayed before")
        parser.add_argument("--dry-run", action="store_true", help="List what would be replayed, send nothing")

    def handle(self, *args, ids, task, again, dry_run, **options):
        if not ids and not task:
            raise CommandError("Give FailedTask ids or --task NAME.")
        failures = FailedTask.objects.order_by("failed_at")
        if ids:
            failures = failures.filter(pk__in=ids)
            missing = set(ids) - set(failures.values_list("pk", flat=True))
            if missing:
                raise CommandError(f"No failed task with id {', '.join(map(str, sorted(missing)))}.")
        if task:
            failures = failures.filter(task_name=task)
        if not again:
            failures = failures.filter(replayed_at__isnull=True)
        for failed in failures:
            if dry_run:
                self.stdout.write(f"would replay {failed.pk}: {failed}")
                continue
            new_id = replay(failed)
            self.stdout.write(f"replayed {failed.pk}: {failed.task_name}[{failed.task_id}] as {new_id}")

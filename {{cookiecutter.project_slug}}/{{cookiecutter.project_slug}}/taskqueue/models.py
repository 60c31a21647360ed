from django.db import models


class FailedTask(models.Model):
    """A task that failed for good: a dead letter a person can read in the admin and replay."""

    task_id = models.CharField(max_length=255, unique=True)
    task_name = models.CharField(max_length=255, db_index=True)
    args = models.JSONField(default=list)
    kwargs = models.JSONField(default=dict)
    queue = models.CharField(max_length=255, blank=True)
    exception = models.CharField(max_length=255, help_text="Exception class")
    message = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    retries = models.PositiveIntegerField(default=0, help_text="Retries before the final failure")
    failed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    replayed_at = models.DateTimeField(null=True, blank=True)
    replayed_as = models.CharField(max_length=255, blank=True, help_text="Task id of the replay")

    class Meta:
        ordering = ["-failed_at"]

    def __str__(self):
        return f"{self.task_name}[{self.task_id}] {self.exception}"


class DeclaredPeriodicTask(models.Model):
    """Marks a django-celery-beat row that ``sync_periodic_tasks`` made from a ``schedules.py`` declaration.

    The sync deletes a marked row once no code declares it (removed or renamed), so beat stops sending it; a row
    without the mark was made by a person in the admin, and the sync never touches it.
    """

    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", on_delete=models.CASCADE, related_name="declaration"
    )
    declared_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"declared in code: {self.periodic_task_id}"

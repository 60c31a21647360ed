from django.contrib import admin, messages

from {{ cookiecutter.project_slug }}.taskqueue.dead_letters import replay
from {{ cookiecutter.project_slug }}.taskqueue.models import FailedTask


@admin.register(FailedTask)
class FailedTaskAdmin(admin.ModelAdmin):
    list_display = ["task_name", "exception", "retries", "failed_at", "replayed_at"]
    list_filter = ["task_name", "exception", ("replayed_at", admin.EmptyFieldListFilter)]
    search_fields = ["task_id", "task_name", "message"]
    date_hierarchy = "failed_at"
    actions = ["replay_selected"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # A record of what happened: read it, replay it or delete it, never edit it.
        return False

    @admin.action(description="Replay the selected failed tasks", permissions=["delete"])
    def replay_selected(self, request, queryset):
        for failed in queryset:
            replay(failed)
        self.message_user(request, f"Replayed {queryset.count()} task(s).", messages.SUCCESS)

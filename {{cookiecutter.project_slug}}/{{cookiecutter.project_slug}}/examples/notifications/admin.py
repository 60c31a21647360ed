from django.contrib import admin

from {{ cookiecutter.project_slug }}.examples.notifications.models import WelcomeEmail


@admin.register(WelcomeEmail)
class WelcomeEmailAdmin(admin.ModelAdmin):
    list_display = ["user", "claimed_at", "sent_at"]
    list_select_related = ["user"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

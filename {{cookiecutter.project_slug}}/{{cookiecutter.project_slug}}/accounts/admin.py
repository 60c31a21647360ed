from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from {{ cookiecutter.project_slug }}.accounts.models import User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = [*DjangoUserAdmin.list_display, "welcome_email_sent_at"]
    readonly_fields = ["welcome_email_sent_at"]
    fieldsets = [*DjangoUserAdmin.fieldsets, ("Emails", {"fields": ["welcome_email_sent_at"]})]

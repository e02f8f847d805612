"""Admin for staff users and their API tokens."""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from core import services
from core.admin.mixins import ReadOnlyAdminMixin
from core.forms import StaffChangeForm, StaffCreationForm
from core.models import ApiToken, User


@admin.register(User)
class StaffUserAdmin(UserAdmin):
    form = StaffChangeForm
    add_form = StaffCreationForm
    # The ignores are for django-stubs: it types every ModelAdmin's fieldsets as Optional (UserAdmin's
    # is a tuple) and list_display as an instance attribute that depends on the model.
    fieldsets = (*UserAdmin.fieldsets, ("Lending", {"fields": ("role", "phone")}))  # type: ignore[misc]
    add_fieldsets = (*UserAdmin.add_fieldsets, ("Lending", {"fields": ("role", "phone")}))
    list_display = (*UserAdmin.list_display, "role")  # type: ignore[misc]
    list_filter = ("role", *UserAdmin.list_filter)


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Tokens are made with ``manage.py`` (the token is shown once); here they are listed and revoked."""

    list_display = ("user", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "prefix", "user__username")
    ordering = ("-created_at", "-id")
    list_select_related = ("user",)
    fields = list_display
    readonly_fields = fields
    actions = ["revoke"]

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("core.change_apitoken")

    @admin.action(description="Revoke", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        selected = queryset.count()
        revoked = services.api_token_revoke(tokens=queryset)
        message = f"Revoked {revoked} token(s)."
        if revoked < selected:
            message += f" {selected - revoked} were already revoked."
        self.message_user(request, message, messages.SUCCESS)

"""Admin for staff users and their API tokens."""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from core import services
from core.actors import Actor
from core.admin.mixins import ReadOnlyAdminMixin
from core.exceptions import InvalidState
from core.forms import StaffChangeForm, StaffCreationForm
from core.http import staff_user
from core.models import ApiToken, User
from core.services.staff import TELEGRAM_BOT_OFF


@admin.register(User)
class StaffUserAdmin(UserAdmin):
    form = StaffChangeForm
    add_form = StaffCreationForm
    # The ignores are for django-stubs: it types every ModelAdmin's fieldsets as Optional (UserAdmin's
    # is a tuple) and list_display as an instance attribute that depends on the model.
    fieldsets = (  # type: ignore[misc]
        *UserAdmin.fieldsets,
        ("Lending", {"fields": ("role", "phone")}),
        ("Telegram bot", {"fields": ("telegram_status",)}),
    )
    add_fieldsets = (*UserAdmin.add_fieldsets, ("Lending", {"fields": ("role", "phone")}))
    list_display = (*UserAdmin.list_display, "role")  # type: ignore[misc]
    list_filter = ("role", *UserAdmin.list_filter)
    readonly_fields = ("telegram_status",)
    actions = ["make_telegram_link_code"]

    @admin.display(description="Telegram")
    def telegram_status(self, user: User) -> str:
        if user.telegram_user_id is None:
            linked = "Not linked."
        elif user.telegram_unreachable:
            linked = "Linked, but the bot was blocked: alerts go by SMS until they link again."
        else:
            linked = f"Linked since {user.telegram_linked_at:%Y-%m-%d %H:%M}: alerts go to Telegram."
        if user.pk is None:
            return linked
        url = reverse("admin:core_user_telegram_link", args=[user.pk])
        return format_html('{} <a href="{}">Make a link code</a>', linked, url)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.telegram_link_view)
        return [
            path("<path:object_id>/telegram-link/", view, name="core_user_telegram_link"),
            *super().get_urls(),
        ]

    def telegram_link_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The user's page for a Telegram link code: a button, then the code and its link, shown once."""
        user = self.get_object(request, object_id)
        if user is None:
            raise Http404("no such user")
        if not self.has_change_permission(request, user):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": f"Telegram link code for {user.get_username()}",
            "opts": self.model._meta,
            "original": user,
            "status": self.telegram_status(user),
        }
        if request.method == "POST":
            try:
                code, link = services.user_telegram_code_create(
                    user=user, actor=Actor.staff(staff_user(request))
                )
            except InvalidState as exc:
                context["error"] = exc.detail
            else:
                context |= {"code": code, "link": link, "bot_off": "" if link else TELEGRAM_BOT_OFF}
        return TemplateResponse(request, "admin/core/user/telegram_link.html", context)

    def has_make_telegram_link_code_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("core.change_user")

    @admin.action(description="Make a Telegram link code", permissions=["make_telegram_link_code"])
    def make_telegram_link_code(self, request: HttpRequest, queryset: QuerySet) -> None:
        for user in queryset:
            try:
                code, link = services.user_telegram_code_create(
                    user=user, actor=Actor.staff(staff_user(request))
                )
            except InvalidState as exc:
                self.message_user(request, exc.detail, messages.ERROR)
                continue
            if not link:
                self.message_user(
                    request,
                    f"{user.get_username()}: code {code} (send /start {code} to the bot within 15 minutes; "
                    f"it works once and is not shown again). {TELEGRAM_BOT_OFF}",
                    messages.WARNING,
                )
                continue
            self.message_user(
                request,
                f"{user.get_username()}: open {link} within 15 minutes (or send /start {code} to the bot). "
                "The code works once and is not shown again.",
                messages.SUCCESS,
            )


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

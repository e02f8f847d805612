"""What the core admin pages share: their mixins, small helpers and the one-row money action page."""

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, TypeVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

from core.exceptions import HavenError
from core.http import staff_user
from core.models import BorrowerPhone, User
from core.money import format_kes
from core.phones import try_normalize_phone

ACTION_TEMPLATE = "admin/core/action_form.html"

M = TypeVar("M", bound=models.Model)

if TYPE_CHECKING:
    # The mixins that call super() are only ever put before admin.ModelAdmin; telling the type
    # checker so lets it check those calls. At run time they stay plain classes.
    ModelAdminMixinBase = admin.ModelAdmin
else:
    ModelAdminMixinBase = object


def _money(amount: Decimal | None) -> str:
    return "" if amount is None else format_kes(amount)


def _adopt(obj: models.Model, created: models.Model) -> None:
    """Point the admin's unsaved instance at the row a service created, so the admin's change log
    and its redirect refer to that row."""
    obj.pk = created.pk
    obj.refresh_from_db()
    obj._state.adding = False


def _staff_only(db_field: models.ForeignKey, kwargs: dict) -> dict:
    if db_field.name == "loan_officer":
        kwargs["queryset"] = User.objects.filter(is_staff=True, is_active=True).order_by("username")
    return kwargs


class ReadOnlyAdminMixin:
    """Rows written only by services: they can be viewed, never added, changed or deleted here."""

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


class PortfolioScopedMixin(ModelAdminMixinBase):
    """Officers see their own portfolio only; admins see everything. Change pages and actions go
    through ``get_queryset`` too, so another officer's rows are "not found" rather than forbidden."""

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        user = staff_user(request)
        return queryset if user.is_admin else self.limit_to_portfolio(queryset, user)

    def limit_to_portfolio(self, queryset: QuerySet, user: User) -> QuerySet:
        raise NotImplementedError


class ServiceErrorsAsMessagesMixin(ModelAdminMixinBase):
    """A service can still refuse a form that validated (a phone number taken a moment ago by someone
    else). The admin saves inside one transaction, so the exception rolls the save back; show it as
    a message instead of a 500."""

    def changeform_view(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return super().changeform_view(request, *args, **kwargs)
        except HavenError as exc:
            self.message_user(request, exc.detail, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


class PhoneSearchMixin(ModelAdminMixinBase):
    """Search also finds borrowers by phone number written any way ("0712 345 678" finds
    +254712345678). ``phone_search_field`` names the borrower on the searched model."""

    phone_search_field = "pk"

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        e164 = try_normalize_phone(search_term)
        if e164:
            # A subquery rather than a join: a borrower with two phones must not list twice.
            owners = BorrowerPhone.objects.filter(number=e164).values("borrower_id")
            results |= queryset.filter(**{f"{self.phone_search_field}__in": owners})
        return results, may_have_duplicates


def _single_object_action(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[M],
    *,
    action: str,
    title: str,
    submit_label: str,
    form_class: type[forms.Form],
    details: Callable[[M], list[tuple[str, object]]],
    perform: Callable[[M, dict], str],
    initial: Callable[[M], dict] | None = None,
) -> HttpResponse | None:
    """Run a money action on exactly one selected row: show its form page, then call ``perform``.

    The page posts back to the changelist with the action and the selected id, plus ``apply``. A
    ``HavenError`` from the service becomes an error message; returning None sends the user back
    to the changelist, where the message shows.
    """
    opts = model_admin.model._meta
    if queryset.count() != 1:
        model_admin.message_user(
            request,
            f"“{title}” works on one {opts.verbose_name} at a time: select exactly one.",
            messages.ERROR,
        )
        return None
    obj = queryset.get()
    if "apply" in request.POST:
        form = form_class(request.POST)
        if form.is_valid():
            try:
                message = perform(obj, form.cleaned_data)
            except HavenError as exc:
                model_admin.message_user(request, f"{obj}: {exc.detail}", messages.ERROR)
            else:
                model_admin.message_user(request, message, messages.SUCCESS)
            return None
    else:
        form = form_class(initial=initial(obj) if initial else None)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"{title}: {obj}",
        "opts": opts,
        "object": obj,
        "details": details(obj),
        "form": form,
        "media": model_admin.media + form.media,
        "action": action,
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
        "submit_label": submit_label,
    }
    return TemplateResponse(request, ACTION_TEMPLATE, context)

"""What the admin pages share: their mixins and small helpers (the action page is ``core.admin.actions``)."""

from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from core.actors import Actor
from core.exceptions import HavenError
from core.http import staff_user
from core.models import BorrowerPhone, User
from core.money import format_kes
from core.phones import try_normalize_phone

M = TypeVar("M", bound=models.Model)

if TYPE_CHECKING:
    # The mixins that call super() are only ever put before admin.ModelAdmin; telling the type
    # checker so lets it check those calls. At run time they stay plain classes.
    ModelAdminMixinBase = admin.ModelAdmin
else:
    ModelAdminMixinBase = object


def money(amount: Decimal | None) -> str:
    """An amount as admin lists show it: ``KES 1,250.00``, blank when there is none."""
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


class SavedThroughServicesMixin(ModelAdminMixinBase):
    """Add and change pages that write through the services, never ``Model.save()``: the add page
    has its own form (``add_form``, ``add_fieldsets``) and hands the cleaned data to ``create``; a
    change hands the ``editable_fields`` the form changed to ``update``, which audits each with its
    before and after. Nothing is deleted here: no service deletes these rows."""

    add_form: type[forms.ModelForm]
    add_fieldsets: Any
    editable_fields: tuple[str, ...]

    def create(self, data: dict[str, Any], *, actor: Actor) -> models.Model:
        """Create the row from the add form's cleaned data; returns it."""
        raise NotImplementedError

    def update(self, obj: Any, *, changes: dict[str, object], actor: Actor) -> None:
        raise NotImplementedError

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_fieldsets(self, request: HttpRequest, obj: Any = None):
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool) -> None:
        actor = Actor.staff(staff_user(request))
        if change:
            edited = {
                name: form.cleaned_data[name] for name in form.changed_data if name in self.editable_fields
            }
            self.update(obj, changes=edited, actor=actor)
        else:
            _adopt(obj, self.create(form.cleaned_data, actor=actor))

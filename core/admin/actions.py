"""The page between choosing an admin action and running it, shared by every admin in the project.

An action that needs answers (a reason, a loan number, an amount) shows ``form_class`` on that page
with the object's details; the page posts back with ``apply`` and the action calls its service. A
form that must be confirmed (``NeedsConfirmation``) is shown once more with what it will do.
"""

from collections.abc import Callable
from typing import Protocol, Self, runtime_checkable

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from core.exceptions import HavenError

ACTION_TEMPLATE = "admin/core/action_form.html"


@runtime_checkable
class NeedsConfirmation(Protocol):
    """A form that, once valid, may ask to be shown again with more details before ``form_page``
    applies it (``payments.forms.AssignToLoanForm``)."""

    def needs_confirmation(self) -> bool: ...

    def confirming(self) -> Self: ...

    def confirmation_details(self) -> list[tuple[str, object]]: ...


def selected_one(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet, title: str):
    """The one selected row, or ``None`` after telling the user to select exactly one."""
    if queryset.count() == 1:
        return queryset.get()
    model_admin.message_user(
        request,
        f"“{title}” works on one {model_admin.model._meta.verbose_name} at a time: select exactly one.",
        messages.ERROR,
    )
    return None


def form_page(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    obj: models.Model,
    *,
    action: str,
    title: str,
    submit_label: str,
    form_class: type[forms.Form],
    details: list[tuple[str, object]],
    perform: Callable[[dict], str],
    form_kwargs: dict | None = None,
    initial: dict | None = None,
) -> HttpResponse | None:
    """The page of an action that needs answers: show ``form_class``, then call ``perform``.

    The page posts back to where it came from (the changelist with the action and the selected id,
    or an object's own action URL) with ``apply``. A form with ``needs_confirmation()`` is shown
    once more with its ``confirmation_details()`` before ``perform`` runs. ``perform`` returns the
    success message; a ``HavenError`` becomes an error message. Returns ``None`` once done, so the
    caller redirects to a page where the message shows.
    """
    form_kwargs = form_kwargs or {}
    confirming = False
    if "apply" in request.POST:
        form = form_class(request.POST, **form_kwargs)
        if form.is_valid():
            if isinstance(form, NeedsConfirmation) and form.needs_confirmation():
                shown = form.confirming()
                form, confirming = shown, True
                details = [*details, *shown.confirmation_details()]
            else:
                try:
                    message = perform(form.cleaned_data)
                except HavenError as exc:
                    model_admin.message_user(request, f"{obj}: {exc.detail}", messages.ERROR)
                else:
                    model_admin.message_user(request, message, messages.SUCCESS)
                return None
    else:
        form = form_class(initial=initial, **form_kwargs)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"{title}: {obj}",
        "opts": model_admin.model._meta,
        "object": obj,
        "details": details,
        "form": form,
        "confirming": confirming,
        "media": model_admin.media + form.media,
        "action": action,
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
        "submit_label": f"Confirm: {submit_label}" if confirming else submit_label,
    }
    return TemplateResponse(request, ACTION_TEMPLATE, context)

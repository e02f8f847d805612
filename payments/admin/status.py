"""Transaction Status queries in the admin: "Add" asks Daraja about an M-Pesa code (a borrower says
they paid), the list shows each question and Daraja's answer. Nothing here is edited by hand."""

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from core.http import staff_user
from payments.admin.base import pretty_json
from payments.forms import StatusQueryForm
from payments.models import StatusQuery


@admin.register(StatusQuery)
class StatusQueryAdmin(admin.ModelAdmin):
    list_display = ("trans_id", "requested_at", "requested_by", "state", "outcome", "result_code", "payment")
    list_filter = ("state", "outcome")
    search_fields = ("trans_id",)
    date_hierarchy = "requested_at"
    fields = (
        "trans_id",
        "config",
        "requested_by",
        "requested_at",
        "state",
        "outcome",
        "payment",
        "answered_at",
        "result_code",
        "result_description",
        "answer_pretty",
        "conversation_id",
        "error",
    )
    readonly_fields = fields

    @admin.display(description="Payment")
    def payment(self, query: StatusQuery) -> str:
        tx = query.transaction if query.outcome in ("created", "confirmed") else None
        if tx is None:
            return "—"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:payments_mpesatransaction_change", args=[tx.pk]),
            tx.trans_id,
        )

    @admin.display(description="Daraja's answer")
    def answer_pretty(self, query: StatusQuery) -> str:
        return pretty_json(query.answer) if query.answer else "—"

    def has_change_permission(self, request: HttpRequest, obj: StatusQuery | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: StatusQuery | None = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Any member of staff may ask: a question moves no money, and what it finds is posted by the engine.
        return request.user.is_active and request.user.is_staff

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None) -> HttpResponse:
        form = StatusQueryForm(request.POST or None)
        if request.method == "POST" and (query := form.ask(staff_user(request))) is not None:
            messages.success(
                request, f"Asked Daraja about {query.trans_id}; the answer shows here when it arrives."
            )
            return HttpResponseRedirect(reverse("admin:payments_statusquery_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Ask Daraja about an M-Pesa code",
            "form": form,
            "add": True,
            "has_view_permission": True,
        }
        return TemplateResponse(request, "admin/payments/status_query_add.html", context)

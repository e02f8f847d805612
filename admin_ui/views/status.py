"""Transaction Status from the staff pages: type the M-Pesa code a borrower says they paid with, see
Daraja's answer when it arrives."""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from core.http import staff_user
from payments.forms import StatusQueryForm
from payments.models import StatusQuery

RECENT = 30


@staff_member_required
@require_http_methods(["GET", "POST"])
def status_query(request: HttpRequest) -> HttpResponse:
    form = StatusQueryForm(request.POST or None)
    if request.method == "POST" and (query := form.ask(staff_user(request))) is not None:
        messages.success(
            request, f"Asked Daraja about {query.trans_id}; its answer shows below when it arrives."
        )
        return redirect("admin_ui:status-query")
    queries = StatusQuery.objects.select_related("requested_by")[:RECENT]
    return render(request, "admin_ui/status_query.html", {"form": form, "queries": queries})

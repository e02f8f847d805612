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
    user = staff_user(request)
    queries = StatusQuery.objects.select_related("requested_by")
    if not user.is_admin:
        # An officer sees the queries they made: another's may name a payment outside their portfolio.
        queries = queries.filter(requested_by=user)
    queries = queries[:RECENT]
    return render(request, "admin_ui/status_query.html", {"form": form, "queries": queries})

"""The M-Pesa configuration page (URL registration) and the test payment page (simulate)."""

import json

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from admin_ui.forms import SimulatedPaymentForm
from core.exceptions import HavenError, InvalidAmount, InvalidPhoneNumber, NotFound
from core.http import staff_user
from core.models import User
from payments.codes import is_trans_id
from payments.models import MpesaConfiguration
from payments.services.daraja import mpesa_register_urls, mpesa_simulate


def mask_secret(value: str) -> str:
    """A credential as staff pages show it: never the value, at most its last four characters of a
    long one (enough to tell two keys apart) and its length."""
    if not value:
        return "not set"
    tail = value[-4:] if len(value) >= 20 else ""
    return f"••••••••{tail} ({len(value)} characters)"


def set_or_not(value: str) -> str:
    """Whether a credential is there, and nothing about it."""
    return "set" if value else "not set"


def _active_config() -> MpesaConfiguration | None:
    try:
        return MpesaConfiguration.get_active_config()
    except NotFound:
        return None


def _callback_url_for(user: User, config: MpesaConfiguration, kind: str) -> str:
    url = config.callback_url(kind)
    if user.is_admin:
        return url
    # The token in the URL is what lets a caller post payments; officers need not see it.
    return url.replace(config.callback_token, "•" * 8)


@staff_member_required
@require_http_methods(["GET"])
def configuration(request: HttpRequest) -> HttpResponse:
    user = staff_user(request)
    config = _active_config()
    context: dict = {"config": config}
    if config is not None:
        context.update(
            # Admins may tell two keys apart by their last characters; the secret shows nothing, and
            # officers, who cannot change either, only learn whether they are there.
            consumer_key=(
                mask_secret(config.consumer_key) if user.is_admin else set_or_not(config.consumer_key)
            ),
            consumer_secret=set_or_not(config.consumer_secret),
            validation_url=_callback_url_for(user, config, "validation"),
            confirmation_url=_callback_url_for(user, config, "confirmation"),
            registration=(
                json.dumps(config.last_registration_result, indent=2, ensure_ascii=False, default=str)
                if config.last_registration_result
                else ""
            ),
        )
    return render(request, "admin_ui/configuration.html", context)


@staff_member_required
@require_POST
def configuration_register(request: HttpRequest) -> HttpResponse:
    config = _active_config()
    if not staff_user(request).is_admin:
        messages.error(request, "Only an admin may register the callback URLs.")
    elif config is None:
        messages.error(request, "There is no active M-Pesa configuration to register.")
    else:
        try:
            result = mpesa_register_urls(config=config)
        except HavenError as exc:
            messages.error(request, f"Daraja refused the registration: {exc.detail}")
        else:
            messages.success(request, f"Callback URLs registered with Daraja (API {result['api_version']}).")
    return redirect("admin_ui:configuration")


@staff_member_required
@require_http_methods(["GET", "POST"])
def test_payment(request: HttpRequest) -> HttpResponse:
    if not staff_user(request).is_admin:
        # The account number can be any loan: an officer could post test money into other portfolios.
        return render(request, "admin_ui/test_payment_refused.html", status=403)
    config = _active_config()
    form = SimulatedPaymentForm(request.POST or None)
    if request.method == "POST" and config is None:
        messages.error(request, "There is no active M-Pesa configuration to pay.")
    elif request.method == "POST" and config is not None and form.is_valid():
        try:
            answer = mpesa_simulate(
                config=config,
                phone=form.cleaned_data["phone"],
                amount=form.cleaned_data["amount"],
                bill_reference=form.cleaned_data["account"],
            )
        except InvalidPhoneNumber as exc:
            form.add_error("phone", exc.detail)
        except InvalidAmount as exc:
            form.add_error("amount", exc.detail)
        except HavenError as exc:
            messages.error(request, f"Nothing was sent: {exc.detail}")
        else:
            trans_id = str(answer.get("TransID") or "")
            messages.success(request, f"M-Pesa accepted the test payment {trans_id}".rstrip() + ".")
            # Redirect after POST, so reloading the page does not pay again.
            target = reverse("admin_ui:test-payment")
            return redirect(f"{target}?sent={trans_id}" if is_trans_id(trans_id) else target)
    sent = request.GET.get("sent", "")
    return render(
        request,
        "admin_ui/test_payment.html",
        {
            "config": config,
            "form": form,
            "sent": sent if is_trans_id(sent) else "",
            "is_production": config is not None
            and config.environment == MpesaConfiguration.Environment.PRODUCTION,
        },
    )

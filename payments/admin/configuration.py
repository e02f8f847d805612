"""M-Pesa configurations: settings, credentials that are never shown, and the Daraja calls
(register URLs, test credentials, simulate a payment) as list actions and as buttons on the page."""

import json

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from core.actors import Actor
from core.admin.actions import form_page
from core.exceptions import HavenError
from core.http import staff_user
from core.money import format_kes
from core.phones import mask_phone
from payments.admin.base import AdminsOnlyMixin, pretty_json
from payments.forms import MpesaConfigurationForm, SimulatePaymentForm
from payments.models import MpesaConfiguration, MpesaTransaction
from payments.services.daraja import (
    mpesa_configuration_save,
    mpesa_register_urls,
    mpesa_simulate,
    mpesa_test_credentials,
)

Environment = MpesaConfiguration.Environment


def _error_text(exc: HavenError) -> str:
    code = getattr(exc, "code", None)
    status = getattr(exc, "http_status", None)
    extra = ", ".join(
        part for part in (f"code {code}" if code else "", f"HTTP {status}" if status else "") if part
    )
    return f"{exc.detail} ({extra})" if extra else exc.detail


@admin.register(MpesaConfiguration)
class MpesaConfigurationAdmin(AdminsOnlyMixin, admin.ModelAdmin):
    form = MpesaConfigurationForm
    change_form_template = "admin/payments/mpesaconfiguration/change_form.html"
    list_display = (
        "name",
        "business_short_code",
        "environment",
        "is_active",
        "last_registration_at",
        "registration_ok",
    )
    list_filter = ("environment", "is_active")
    search_fields = ("name", "business_short_code")
    actions = ["register_urls", "test_credentials", "simulate_payment"]
    readonly_fields = (
        "consumer_key_masked",
        "consumer_secret_state",
        "security_credential_state",
        "callback_token",
        "validation_url_display",
        "confirmation_url_display",
        "last_registration_at",
        "registration_result",
        "last_pull_at",
        "last_pull_code",
        "last_pull_message",
        "created_at",
        "updated_at",
    )
    _settings = (
        "name",
        "environment",
        "is_active",
        "business_short_code",
        "base_url",
        "api_version",
        "response_type",
    )
    _callbacks = ("validation_policy", "amount_tolerance", "allowed_ips", "ip_policy")
    add_fieldsets = (
        (None, {"fields": _settings}),
        ("Credentials (stored encrypted)", {"fields": ("new_consumer_key", "new_consumer_secret")}),
        ("Callbacks", {"fields": _callbacks}),
    )
    fieldsets = (
        (None, {"fields": _settings}),
        (
            "Credentials (stored encrypted, never shown)",
            {
                "fields": (
                    "consumer_key_masked",
                    "new_consumer_key",
                    "consumer_secret_state",
                    "new_consumer_secret",
                )
            },
        ),
        (
            "Callbacks",
            {
                "fields": (
                    "callback_token",
                    "validation_url_display",
                    "confirmation_url_display",
                    *_callbacks,
                )
            },
        ),
        ("Registration with Daraja", {"fields": ("last_registration_at", "registration_result")}),
        (
            "Transaction Status (staff ask M-Pesa about a code a borrower paid with)",
            {"fields": ("initiator_name", "security_credential_state", "new_security_credential")},
        ),
        (
            "Pull Transactions (recovers payments whose callback was lost; 1001 means nothing or not enabled)",
            {"fields": ("last_pull_at", "last_pull_code", "last_pull_message")},
        ),
        ("Record", {"fields": ("created_at", "updated_at")}),
    )

    # --- Display ----------------------------------------------------------------------------------

    @admin.display(boolean=True, description="last registration ok")
    def registration_ok(self, config: MpesaConfiguration) -> bool | None:
        result = config.last_registration_result
        return None if not result else bool(result.get("ok"))

    @admin.display(description="consumer key")
    def consumer_key_masked(self, config: MpesaConfiguration) -> str:
        key = config.consumer_key
        if not key:
            return "not set"
        # Four characters of a short key would be most of it.
        return f"••••••{key[-4:]}" if len(key) >= 12 else "set"

    @admin.display(description="consumer secret")
    @admin.display(description="Security credential")
    def security_credential_state(self, config: MpesaConfiguration) -> str:
        return "set" if config.security_credential else "not set"

    def consumer_secret_state(self, config: MpesaConfiguration) -> str:
        return "set" if config.consumer_secret else "not set"

    @admin.display(description="validation URL")
    def validation_url_display(self, config: MpesaConfiguration) -> str:
        return config.validation_url

    @admin.display(description="confirmation URL")
    def confirmation_url_display(self, config: MpesaConfiguration) -> str:
        return config.confirmation_url

    @admin.display(description="last result")
    def registration_result(self, config: MpesaConfiguration) -> str:
        return pretty_json(config.last_registration_result) if config.last_registration_result else "never"

    def get_fieldsets(self, request: HttpRequest, obj: MpesaConfiguration | None = None):
        return self.add_fieldsets if obj is None else self.fieldsets

    def has_delete_permission(self, request: HttpRequest, obj: MpesaConfiguration | None = None) -> bool:
        # Payments point at their configuration; one that is no longer used is made inactive.
        return False

    def save_model(
        self, request: HttpRequest, obj: MpesaConfiguration, form: MpesaConfigurationForm, change: bool
    ) -> None:
        data = form.cleaned_data
        mpesa_configuration_save(
            config=obj,
            changed_fields=[
                f
                for f in form.changed_data
                if f not in ("new_consumer_key", "new_consumer_secret", "new_security_credential")
            ],
            actor=Actor.staff(staff_user(request)),
            consumer_key=data.get("new_consumer_key") or "",
            consumer_secret=data.get("new_consumer_secret") or "",
            security_credential=data.get("new_security_credential") or "",
        )

    # --- Daraja calls -----------------------------------------------------------------------------

    def _register(self, request: HttpRequest, config: MpesaConfiguration) -> None:
        try:
            record = mpesa_register_urls(config=config)
        except HavenError as exc:
            self.message_user(
                request, f"{config}: Daraja did not register the URLs: {_error_text(exc)}", messages.ERROR
            )
            return
        self.message_user(
            request,
            f"{config}: Daraja registered the URLs (API {record['api_version']}): "
            f"{json.dumps(record.get('answer', {}), sort_keys=True)}",
            messages.SUCCESS,
        )

    def _test_credentials(self, request: HttpRequest, config: MpesaConfiguration) -> None:
        try:
            text = mpesa_test_credentials(config=config)
        except HavenError as exc:
            self.message_user(
                request, f"{config}: the credentials did not work: {_error_text(exc)}", messages.ERROR
            )
            return
        self.message_user(request, text, messages.SUCCESS)

    def _simulate(self, request: HttpRequest, config: MpesaConfiguration) -> HttpResponse | None:
        if config.environment == Environment.PRODUCTION:
            self.message_user(
                request,
                f"{config}: M-Pesa has no simulation in production; pay from a real phone instead.",
                messages.ERROR,
            )
            return None

        def perform(data: dict) -> str:
            answer = mpesa_simulate(
                config=config,
                phone=data["phone"],
                amount=data["amount"],
                bill_reference=data["bill_reference"],
                msisdn_format=data["msisdn_format"],
            )
            return self._simulated(config, data, answer)

        return form_page(
            self,
            request,
            config,
            action="simulate_payment",
            title="Simulate a payment",
            submit_label="Pay",
            form_class=SimulatePaymentForm,
            details=[
                ("Short code", config.business_short_code),
                ("Environment", config.get_environment_display()),
            ],
            perform=perform,
        )

    def _simulated(self, config: MpesaConfiguration, data: dict, answer: dict) -> str:
        account = f" (account {data['bill_reference']})" if data["bill_reference"] else ""
        text = (
            f"{mask_phone(data['phone'])} paid {format_kes(data['amount'])} to "
            f"{config.business_short_code}{account} through the {config.get_environment_display()}."
        )
        trans_id = answer.get("TransID")
        if not trans_id:
            return (
                f"{text} Daraja accepted the request ({answer.get('OriginatorCoversationID', 'no id')}); "
                "the TransID arrives with the confirmation callback."
            )
        tx = MpesaTransaction.objects.filter(trans_id=trans_id).first()
        if tx is None:
            return f"{text} TransID {trans_id}: its confirmation has not arrived yet."
        url = reverse("admin:payments_mpesatransaction_change", args=[tx.pk])
        return format_html(
            '{} TransID <a href="{}">{}</a> ({}).', text, url, trans_id, tx.get_status_display()
        )

    @admin.action(description="Register URLs with Daraja", permissions=["change"])
    def register_urls(self, request: HttpRequest, queryset: QuerySet) -> None:
        for config in queryset:
            self._register(request, config)

    @admin.action(description="Test credentials", permissions=["change"])
    def test_credentials(self, request: HttpRequest, queryset: QuerySet) -> None:
        for config in queryset:
            self._test_credentials(request, config)

    @admin.action(description="Simulate a payment", permissions=["change"])
    def simulate_payment(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(
                request, "Select exactly one configuration to simulate a payment.", messages.ERROR
            )
            return None
        return self._simulate(request, queryset.get())

    # --- Buttons on the change page: the same calls, back to the page afterwards --------------------

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/register-urls/", wrap(self.register_urls_view), name=f"{name}_register_urls"
            ),
            path(
                "<path:object_id>/test-credentials/",
                wrap(self.test_credentials_view),
                name=f"{name}_test_credentials",
            ),
            path("<path:object_id>/simulate/", wrap(self.simulate_view), name=f"{name}_simulate"),
            *super().get_urls(),
        ]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        extra_context = {**(extra_context or {}), "daraja_buttons": self.has_change_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _config_for_button(self, request: HttpRequest, object_id: str) -> MpesaConfiguration:
        config = self.get_object(request, unquote(object_id))
        if config is None:
            raise Http404("no such M-Pesa configuration")
        if not self.has_change_permission(request, config):
            raise PermissionDenied
        return config

    def _back_to(self, config: MpesaConfiguration) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:payments_mpesaconfiguration_change", args=[config.pk]))

    def register_urls_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        config = self._config_for_button(request, object_id)
        self._register(request, config)
        return self._back_to(config)

    def test_credentials_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        config = self._config_for_button(request, object_id)
        self._test_credentials(request, config)
        return self._back_to(config)

    def simulate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        config = self._config_for_button(request, object_id)
        return self._simulate(request, config) or self._back_to(config)

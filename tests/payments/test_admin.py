"""The payments admin through the test client: credentials never shown, the Daraja actions (over
HTTP against the emulator on pytest-django's live server; Daraja's error answers through an
httpx.MockTransport injected into the client, as the emulator does not produce them), payment
corrections end to end, search, officer scoping, and read-only money."""

import datetime
import json
import re
from decimal import Decimal as D
from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.core.cache import cache
from django.urls import reverse
from django.utils.html import escape

from core.management.commands.seed_demo import officer_group_ensure
from core.models import AuditEvent, Loan, OutboxMessage, Repayment
from core.phones import msisdn_hash
from payments.clients.daraja import DarajaClient
from payments.models import Allocation, CallbackRequest, MpesaConfiguration, MpesaTransaction
from payments.services import transaction_process
from tests.cache import clear_test_cache
from tests.factories import AdminFactory, BorrowerFactory, LoanFactory, OfficerFactory
from tests.payments.test_processing import stored_payment

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "daraja"
KEY = "ck-9f8e7d6c5b4a-LIVEKEY-7731"
SECRET = "cs-0a1b2c3d-very-secret-5520"
SHORT_CODE = "600984"


# --- Helpers --------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _empty_cache(django_db_blocker):
    clear_test_cache(django_db_blocker)
    yield
    clear_test_cache(django_db_blocker)


@pytest.fixture
def emulator(live_server, settings) -> str:
    settings.MPESA_EMULATOR_ENABLED = True
    settings.MPESA_EMULATOR_URL = f"{live_server.url}/daraja-emulator"
    settings.ROOT_URLCONF = "tests.payments.emulator_urls"
    return settings.MPESA_EMULATOR_URL


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def make_config(**fields) -> MpesaConfiguration:
    defaults = {
        "name": "Main paybill",
        "environment": MpesaConfiguration.Environment.LOCAL,
        "consumer_key": KEY,
        "consumer_secret": SECRET,
        "business_short_code": SHORT_CODE,
        "base_url": "https://pay.haven.example",
    }
    return MpesaConfiguration.objects.create(**{**defaults, **fields})


def inject_daraja(monkeypatch, handler) -> None:
    """Every DarajaClient the services build talks to ``handler`` instead of the network."""
    build = DarajaClient.for_config

    def for_config(cls, config, *, transport=None):
        return build(config, transport=httpx.MockTransport(handler))

    monkeypatch.setattr(DarajaClient, "for_config", classmethod(for_config))


def daraja_answer(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _messages(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


def changelist(model: str) -> str:
    return reverse(f"admin:payments_{model}_changelist")


def change_url(obj) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def action_page(client, model: str, action: str, ids: list[int]):
    """Choose the action on the changelist; returns its form page."""
    page = client.post(changelist(model), {"action": action, "_selected_action": ids, "index": 0})
    assert page.status_code == 200
    assert "admin/core/action_form.html" in [t.name for t in page.templates]
    return page


def submit_action(client, model: str, action: str, ids: list[int], **form: str):
    return client.post(
        changelist(model), {"action": action, "_selected_action": ids, "apply": "1", **form}, follow=True
    )


def config_form_data(config: MpesaConfiguration, **changes: str) -> dict:
    data = {
        "name": config.name,
        "environment": config.environment,
        "is_active": "on",
        "business_short_code": config.business_short_code,
        "base_url": config.base_url,
        "api_version": config.api_version,
        "response_type": config.response_type,
        "validation_policy": config.validation_policy,
        "amount_tolerance": str(config.amount_tolerance),
        "allowed_ips": config.allowed_ips,
        "ip_policy": config.ip_policy,
        "new_consumer_key": "",
        "new_consumer_secret": "",
        "_save": "Save",
    }
    return {**data, **changes}


# --- Configuration: credentials -------------------------------------------------------------------


def test_credentials_never_appear_in_the_change_form_or_the_list(admin_client):
    config = make_config()

    for url in (change_url(config), changelist("mpesaconfiguration")):
        response = admin_client.get(url)
        assert response.status_code == 200
        assert KEY.encode() not in response.content and SECRET.encode() not in response.content

    page = admin_client.get(change_url(config)).content.decode()
    assert "••••••7731" in page
    assert 'type="password" name="new_consumer_key"' in page
    assert 'type="password" name="new_consumer_secret"' in page
    assert config.callback_token in page and config.validation_url in page and config.confirmation_url in page


def test_a_refused_form_does_not_send_a_typed_secret_back(admin_client):
    config = make_config()

    response = admin_client.post(
        change_url(config),
        config_form_data(config, business_short_code="12", new_consumer_secret="typed-secret-4410"),
    )

    assert response.status_code == 200  # the form again, with the short code error
    assert "5 to 7 digits" in response.content.decode()
    assert b"typed-secret-4410" not in response.content and SECRET.encode() not in response.content
    config.refresh_from_db()
    assert config.consumer_secret == SECRET


def test_replacing_the_secret_keeps_the_key_and_empty_keeps_both(admin_client, admin_user):
    config = make_config()

    response = admin_client.post(
        change_url(config), config_form_data(config, new_consumer_secret="new-s3cret")
    )

    assert response.status_code == 302
    config.refresh_from_db()
    assert (config.consumer_key, config.consumer_secret) == (KEY, "new-s3cret")
    event = AuditEvent.objects.get(action="mpesa_configuration_updated")
    assert (event.actor_user, event.data["credentials_changed"]) == (admin_user, ["consumer_secret"])
    assert "new-s3cret" not in json.dumps(event.data)

    response = admin_client.post(change_url(config), config_form_data(config, name="Renamed"))

    assert response.status_code == 302
    config.refresh_from_db()
    assert (config.name, config.consumer_key, config.consumer_secret) == ("Renamed", KEY, "new-s3cret")


def test_adding_a_configuration_needs_both_credentials(admin_client):
    new = MpesaConfiguration(
        name="Sandbox",
        environment="sandbox",
        business_short_code="174379",
        base_url="https://pay.haven.example",
    )
    data = config_form_data(new, new_consumer_key=KEY)

    response = admin_client.post(reverse("admin:payments_mpesaconfiguration_add"), data)

    assert response.status_code == 200
    assert "a new configuration needs its consumer secret" in response.content.decode()
    assert not MpesaConfiguration.objects.exists()

    data["new_consumer_secret"] = SECRET
    response = admin_client.post(reverse("admin:payments_mpesaconfiguration_add"), data)

    assert response.status_code == 302
    config = MpesaConfiguration.objects.get()
    assert (config.business_short_code, config.consumer_key, config.consumer_secret) == (
        "174379",
        KEY,
        SECRET,
    )


def test_a_base_url_daraja_would_refuse_is_a_form_error(admin_client):
    config = make_config()

    response = admin_client.post(
        change_url(config), config_form_data(config, base_url="https://mpesa.example.com")
    )

    assert response.status_code == 200
    assert "Daraja would refuse the callback URLs" in response.content.decode()
    config.refresh_from_db()
    assert config.base_url == "https://pay.haven.example"


# --- Configuration: Daraja actions ------------------------------------------------------------------


def test_register_urls_button_against_the_emulator(emulator, live_server, admin_client):
    config = make_config(base_url=live_server.url)

    response = admin_client.post(
        reverse("admin:payments_mpesaconfiguration_register_urls", args=[config.pk]), follow=True
    )

    assert response.redirect_chain == [(change_url(config), 302)]
    [(level, text)] = _messages(response)
    assert level == "success"
    assert "Daraja registered the URLs (API v2)" in text and '"ResponseDescription": "Success"' in text
    config.refresh_from_db()
    assert config.last_registration_result["ok"] is True
    registered = cache.get(f"daraja-emulator:urls:{SHORT_CODE}")
    assert (registered["validation_url"], registered["confirmation_url"]) == (
        config.validation_url,
        config.confirmation_url,
    )


def test_register_urls_action_shows_dara_jas_error_code_and_saves_it(admin_client, monkeypatch):
    config = make_config(environment=MpesaConfiguration.Environment.SANDBOX)

    def handler(request):
        if request.url.path.startswith("/oauth"):
            return httpx.Response(200, json=daraja_answer("api_oauth_token"))
        return httpx.Response(500, json=daraja_answer("api_error_already_registered"))

    inject_daraja(monkeypatch, handler)

    response = admin_client.post(
        changelist("mpesaconfiguration"),
        {"action": "register_urls", "_selected_action": [config.pk], "index": 0},
        follow=True,
    )

    assert response.status_code == 200
    [(level, text)] = _messages(response)
    assert level == "error"
    assert "Daraja did not register the URLs" in text and "code 500.003.1001" in text and "HTTP 500" in text
    config.refresh_from_db()
    assert (config.last_registration_result["ok"], config.last_registration_result["code"]) == (
        False,
        "500.003.1001",
    )


def test_test_credentials_button_and_action_against_the_emulator(emulator, live_server, admin_client):
    config = make_config(base_url=live_server.url)

    response = admin_client.post(
        reverse("admin:payments_mpesaconfiguration_test_credentials", args=[config.pk]), follow=True
    )
    assert _messages(response) == [
        (
            "success",
            f"Daraja (Local emulator) accepted the consumer key and secret of short code {SHORT_CODE}.",
        )
    ]

    response = admin_client.post(
        changelist("mpesaconfiguration"),
        {"action": "test_credentials", "_selected_action": [config.pk], "index": 0},
        follow=True,
    )
    assert [level for level, _ in _messages(response)] == ["success"]


def test_test_credentials_refused_is_an_error_message(admin_client, monkeypatch):
    config = make_config(environment=MpesaConfiguration.Environment.SANDBOX)
    inject_daraja(
        monkeypatch, lambda request: httpx.Response(400, json=daraja_answer("api_error_invalid_credentials"))
    )

    response = admin_client.post(
        reverse("admin:payments_mpesaconfiguration_test_credentials", args=[config.pk]), follow=True
    )

    [(level, text)] = _messages(response)
    assert level == "error" and "the credentials did not work" in text and "400.008.01" in text
    assert SECRET not in text and KEY not in text


def test_buttons_do_nothing_on_get(admin_client):
    config = make_config()

    response = admin_client.get(reverse("admin:payments_mpesaconfiguration_register_urls", args=[config.pk]))

    assert response.status_code == 405
    config.refresh_from_db()
    assert config.last_registration_at is None


def test_simulate_from_the_change_page_pays_through_the_emulator_and_links_the_payment(
    emulator, live_server, admin_client
):
    borrower = BorrowerFactory(phones=["+254712345678"])
    loan = LoanFactory(loan_number="LOAN-000777", borrower=borrower, principal_disbursed=D("2000"))
    config = make_config(base_url=live_server.url)
    url = reverse("admin:payments_mpesaconfiguration_simulate", args=[config.pk])
    assert url in admin_client.get(change_url(config)).content.decode()  # the button

    page = admin_client.get(url)
    assert page.status_code == 200 and "admin/core/action_form.html" in [t.name for t in page.templates]
    bad = admin_client.post(
        url, {"apply": "1", "phone": "12345", "amount": "10.50", "msisdn_format": "hashed"}
    )
    assert bad.status_code == 200
    assert set(bad.context["form"].errors) == {"phone", "amount"}
    assert not MpesaTransaction.objects.exists()

    response = admin_client.post(
        url,
        {
            "apply": "1",
            "phone": "0712345678",
            "amount": "750",
            "bill_reference": "LOAN-000777",
            "msisdn_format": "hashed",
        },
        follow=True,
    )

    tx = MpesaTransaction.objects.get()
    assert response.redirect_chain == [(change_url(config), 302)]
    [(level, text)] = _messages(response)
    assert level == "success"
    assert text == (
        f"2547*****678 paid KES 750.00 to {SHORT_CODE} (account LOAN-000777) through the Local emulator. "
        f'TransID <a href="{change_url(tx)}">{tx.trans_id}</a> (Processed).'
    )
    assert (tx.status, tx.msisdn_kind, tx.amount) == ("processed", "hashed", D("750.00"))
    loan.refresh_from_db()
    assert loan.outstanding == D("1250.00")


@pytest.mark.parametrize("via", ["action", "button"])
def test_simulate_is_refused_in_production(admin_client, via):
    config = make_config(environment=MpesaConfiguration.Environment.PRODUCTION)

    if via == "action":
        response = admin_client.post(
            changelist("mpesaconfiguration"),
            {"action": "simulate_payment", "_selected_action": [config.pk], "index": 0},
            follow=True,
        )
    else:
        assert b"Simulate a payment</a>" not in admin_client.get(change_url(config)).content
        response = admin_client.get(
            reverse("admin:payments_mpesaconfiguration_simulate", args=[config.pk]), follow=True
        )

    assert "admin/core/action_form.html" not in [t.name for t in response.templates]
    assert _messages(response) == [
        ("error", f"{config}: M-Pesa has no simulation in production; pay from a real phone instead.")
    ]
    assert not MpesaTransaction.objects.exists()


def test_simulate_when_the_emulator_is_down_is_an_error_message(admin_client, monkeypatch):
    config = make_config()

    def handler(request):
        raise httpx.ConnectError("connection refused")

    inject_daraja(monkeypatch, handler)
    action_page(admin_client, "mpesaconfiguration", "simulate_payment", [config.pk])

    response = submit_action(
        admin_client,
        "mpesaconfiguration",
        "simulate_payment",
        [config.pk],
        phone="0712345678",
        amount="500",
        bill_reference="",
        msisdn_format="plain",
    )

    assert response.status_code == 200
    [(level, text)] = _messages(response)
    assert level == "error" and text.startswith(f"{config}: ")
    assert not MpesaTransaction.objects.exists()


def test_officers_do_not_get_the_configuration(officer_client):
    config = make_config()

    assert officer_client.get(changelist("mpesaconfiguration")).status_code == 403
    response = officer_client.post(
        reverse("admin:payments_mpesaconfiguration_register_urls", args=[config.pk])
    )
    assert response.status_code == 403


# --- Transactions: actions ----------------------------------------------------------------------------


@pytest.fixture
def officer_client(client, officer):
    officer.groups.add(officer_group_ensure())
    officer.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="payments",
            codename__in=["view_mpesatransaction", "change_mpesatransaction"],
        )
    )
    client.force_login(officer)
    return client


def make_loan(number: str, outstanding: str, **kwargs) -> Loan:
    return LoanFactory(loan_number=number, principal_disbursed=D(outstanding), **kwargs)


def test_reprocess_a_failed_payment(admin_client, admin_user, mpesa_config, monkeypatch):
    loan = make_loan("LOAN-000060", "5000")

    def broken(**kwargs):
        raise RuntimeError("ledger exploded")

    monkeypatch.setattr("payments.services.processing.queue_payment_news", broken)
    tx = transaction_process(trans_id=stored_payment(mpesa_config, bill_reference="LOAN-000060").trans_id)
    assert tx.status == "failed"
    monkeypatch.undo()

    page = admin_client.post(
        changelist("mpesatransaction"), {"action": "reprocess", "_selected_action": [tx.pk], "index": 0}
    )
    assert page.status_code == 200 and "admin/payments/bulk_action_form.html" in [
        t.name for t in page.templates
    ]
    html = page.content.decode()
    assert "Reprocess 1 payment" in html and tx.trans_id in html and 'name="reason"' in html
    tx.refresh_from_db()
    assert tx.status == "failed"  # nothing runs before the page is confirmed

    response = submit_action(admin_client, "mpesatransaction", "reprocess", [tx.pk], reason="ledger fixed")

    assert _messages(response) == [("success", f"{tx.trans_id} reprocessed: Processed.")]
    tx.refresh_from_db()
    assert (tx.status, tx.attempts) == ("processed", 2)
    assert f"reprocess requested by {admin_user.username}: ledger fixed" in tx.notes
    loan.refresh_from_db()
    assert loan.outstanding == D("4000.00")
    event = AuditEvent.objects.get(action="mpesa.reprocessed")
    assert (event.actor_user, event.object_id, event.reason) == (admin_user, str(tx.pk), "ledger fixed")


def test_reprocess_several_payments_at_once(admin_client, mpesa_config):
    make_loan("LOAN-000062", "5000")
    unmatched = [
        stored_payment(mpesa_config, trans_id=f"SKUNMAT00{i}", bill_reference="rent", status="unmatched")
        for i in range(3)
    ]
    MpesaTransaction.objects.filter(pk=unmatched[0].pk).update(bill_reference="LOAN-000062")
    ids = [tx.pk for tx in unmatched]

    html = admin_client.post(
        changelist("mpesatransaction"), {"action": "reprocess", "_selected_action": ids, "index": 0}
    ).content.decode()
    assert "Reprocess 3 payments" in html and all(tx.trans_id in html for tx in unmatched)
    assert html.count('name="_selected_action"') == 3

    response = submit_action(admin_client, "mpesatransaction", "reprocess", ids, reason="")

    assert sorted(_messages(response)) == [
        ("success", "SKUNMAT000 reprocessed: Processed."),
        ("warning", "SKUNMAT001 reprocessed: Unmatched."),
        ("warning", "SKUNMAT002 reprocessed: Unmatched."),
    ]
    assert Repayment.objects.count() == 1


def test_reprocess_refuses_a_selection_too_large_to_review(admin_client, mpesa_config, monkeypatch):
    monkeypatch.setattr("payments.admin.transactions.BULK_REPROCESS_LIMIT", 2)
    ids = [stored_payment(mpesa_config, trans_id=f"SKMANY000{i}", status="unmatched").pk for i in range(3)]
    response = admin_client.post(
        changelist("mpesatransaction"),
        {"action": "reprocess", "_selected_action": ids, "index": 0},
        follow=True,
    )
    assert _messages(response) == [("error", "Reprocess at most 2 payments at a time.")]
    assert set(MpesaTransaction.objects.values_list("attempts", flat=True)) == {0}


def test_reprocess_a_processed_payment_is_an_error_message(admin_client, mpesa_config):
    make_loan("LOAN-000061", "5000")
    tx = transaction_process(trans_id=stored_payment(mpesa_config, bill_reference="LOAN-000061").trans_id)

    response = submit_action(admin_client, "mpesatransaction", "reprocess", [tx.pk])

    [(level, text)] = _messages(response)
    assert level == "error" and "only received, failed or unmatched" in text
    assert Repayment.objects.count() == 1


def test_reprocess_when_the_database_is_busy_says_so(admin_client, mpesa_config, monkeypatch):
    from payments.admin import transactions as admin_transactions
    from payments.services import TransientProcessingError

    tx = stored_payment(mpesa_config)

    def busy(**kwargs):
        raise TransientProcessingError("could not obtain lock", trans_id=tx.trans_id)

    monkeypatch.setattr(admin_transactions, "transaction_reprocess", busy)
    response = submit_action(admin_client, "mpesatransaction", "reprocess", [tx.pk])

    assert _messages(response) == [
        ("warning", f"{tx.trans_id}: the database was busy; it stays received and will be tried again.")
    ]


def test_assigning_to_the_loan_it_is_already_on_is_an_error_message(admin_client, mpesa_config):
    make_loan("LOAN-000062", "5000")
    tx = transaction_process(trans_id=stored_payment(mpesa_config, bill_reference="LOAN-000062").trans_id)

    response = submit_action(
        admin_client,
        "mpesatransaction",
        "assign_to_loan",
        [tx.pk],
        loan_number="LOAN-000062",
        reason="again",
        confirmed_loan="LOAN-000062",
    )

    assert _messages(response) == [
        ("error", f"{tx}: {tx.trans_id} is already on LOAN-000062; nothing was changed")
    ]
    assert Repayment.objects.count() == 1


def test_assign_an_unmatched_payment_with_a_bad_then_a_good_loan_number(
    admin_client, admin_user, mpesa_config
):
    target = make_loan("LOAN-000200", "5000")
    paid = make_loan("LOAN-000201", "100", status=Loan.Status.PAID, principal=D("0"))
    tx = transaction_process(trans_id=stored_payment(mpesa_config, bill_reference="rent").trans_id)
    assert tx.status == "unmatched"
    action_page(admin_client, "mpesatransaction", "assign_to_loan", [tx.pk])

    for number, error in (("LOAN-999999", "no loan numbered LOAN-999999"), (paid.loan_number, "not active")):
        page = submit_action(
            admin_client, "mpesatransaction", "assign_to_loan", [tx.pk], loan_number=number, reason="called"
        )
        assert page.status_code == 200 and not page.redirect_chain
        assert error in " ".join(page.context["form"].errors["loan_number"])

    confirm = submit_action(
        admin_client,
        "mpesatransaction",
        "assign_to_loan",
        [tx.pk],
        loan_number="loan-000200",
        reason="called",
    )
    assert confirm.context["confirming"] is True
    assert ("Outstanding", "KES 5,000.00") in confirm.context["details"]
    assert ("Borrower", target.borrower) in confirm.context["details"]
    tx.refresh_from_db()
    assert tx.status == "unmatched"  # nothing happens before the confirmation

    response = submit_action(
        admin_client,
        "mpesatransaction",
        "assign_to_loan",
        [tx.pk],
        loan_number="loan-000200",
        reason="called",
        confirmed_loan="LOAN-000200",
    )

    assert _messages(response) == [
        (
            "success",
            f"{tx.trans_id} (KES 1,000.00) assigned to LOAN-000200 of {target.borrower}; "
            "outstanding now KES 4,000.00.",
        )
    ]
    tx.refresh_from_db()
    assert (tx.status, tx.match_strategy, tx.borrower, tx.reviewed_by) == (
        "processed",
        "manual",
        target.borrower,
        admin_user,
    )
    target.refresh_from_db()
    assert target.outstanding == D("4000.00")
    assert AuditEvent.objects.get(action="mpesa.assigned").reason == "called"


def test_mark_reviewed_with_a_note(admin_client, admin_user, mpesa_config):
    tx = transaction_process(trans_id=stored_payment(mpesa_config, bill_reference="rent").trans_id)

    action_page(admin_client, "mpesatransaction", "mark_reviewed", [tx.pk])
    response = submit_action(
        admin_client, "mpesatransaction", "mark_reviewed", [tx.pk], note="refund by bank"
    )

    assert _messages(response) == [("success", f"{tx.trans_id} marked reviewed.")]
    tx.refresh_from_db()
    assert tx.reviewed_by == admin_user and tx.reviewed_at is not None
    assert tx.notes[-1] == f"reviewed by {admin_user.username}: refund by bank"

    again = submit_action(admin_client, "mpesatransaction", "mark_reviewed", [tx.pk], note="")
    assert _messages(again) == [("error", f"{tx}: {tx.trans_id} was already reviewed")]


def test_reverse_needs_a_reason_and_undoes_the_posting(admin_client, admin_user, mpesa_config):
    loan = make_loan("LOAN-000300", "5000")
    tx = transaction_process(trans_id=stored_payment(mpesa_config, bill_reference="LOAN-000300").trans_id)
    action_page(admin_client, "mpesatransaction", "reverse_payment", [tx.pk])

    refused = submit_action(admin_client, "mpesatransaction", "reverse_payment", [tx.pk], reason="  ")
    assert "reason" in refused.context["form"].errors
    tx.refresh_from_db()
    assert tx.status == "processed"

    response = submit_action(
        admin_client, "mpesatransaction", "reverse_payment", [tx.pk], reason="Safaricom reversed it"
    )

    assert _messages(response) == [
        ("success", f"{tx.trans_id} (KES 1,000.00) reversed; its postings and credit were undone.")
    ]
    tx.refresh_from_db()
    assert (tx.status, tx.reviewed_by) == ("reversed", admin_user)
    loan.refresh_from_db()
    assert loan.outstanding == D("5000.00")
    assert Repayment.objects.filter(kind="reversal", loan=loan).count() == 1
    assert Allocation.objects.get(transaction=tx).reversed_at is not None
    assert AuditEvent.objects.get(action="mpesa.reversed").reason == "Safaricom reversed it"


def test_change_page_shows_notes_allocations_raw_request_and_audit_trail(admin_client, mpesa_config):
    loan = make_loan("LOAN-000400", "5000")
    body = '{"TransID": "RKL51ZDR4F", "FirstName": "<b>NICHOLAS</b>"}'
    tx = transaction_process(
        trans_id=stored_payment(
            mpesa_config,
            bill_reference="LOAN-000400",
            source_ip="196.201.214.200",
            raw_headers={"User-Agent": "Apache-HttpClient"},
            raw_body=body,
        ).trans_id
    )
    duplicate = CallbackRequest.objects.create(
        kind="confirmation", config=mpesa_config, body=body, outcome="duplicate", result_code="0"
    )

    page = admin_client.get(change_url(tx)).content.decode()

    assert "<ol><li>" in page and f"<li>{escape(tx.notes[0])}</li>" in page
    assert f'href="{change_url(loan)}">LOAN-000400</a>' in page
    assert "Confirmation request as received" in page and "196.201.214.200" in page
    assert escape('"FirstName": "<b>NICHOLAS</b>"') in page and "<b>NICHOLAS" not in page
    assert escape('"User-Agent": "Apache-HttpClient"') in page
    # The raw request of a second delivery links to the payment its TransID names.
    assert (
        f'href="{change_url(tx)}">RKL51ZDR4F</a>' in admin_client.get(change_url(duplicate)).content.decode()
    )
    assert "<td>repayment.posted</td>" in page
    assert 'name="amount"' not in page and 'name="trans_id"' not in page


def test_audit_trail_lists_credit_movements_in_nairobi_time(admin_client, mpesa_config):
    make_loan("LOAN-000410", "5000")
    # 6,000 on a loan owing 5,000: 5,000 posted, 1,000 held as the borrower's credit.
    tx = transaction_process(
        trans_id=stored_payment(mpesa_config, bill_reference="LOAN-000410", amount=D("6000.00")).trans_id
    )
    AuditEvent.objects.filter(data__reference=tx.trans_id).update(
        created_at=datetime.datetime(2026, 3, 10, 21, 30, 5, tzinfo=datetime.UTC)
    )

    page = admin_client.get(change_url(tx)).content.decode()

    trail = page.split("<th>when</th>")[1].split("</table>")[0]
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>.*?</td><td>(.*?)</td>", trail)
    # 21:30 UTC is half past midnight the next day in Nairobi, and the page says which zone it is.
    assert rows == [
        ("2026-03-11 00:30:05 EAT", "repayment.posted", "KES 5,000.00"),
        ("2026-03-11 00:30:05 EAT", "credit.added", "KES 1,000.00"),
    ]


# --- Transactions: search, scoping, read-only ----------------------------------------------------------


def test_search_by_phone_in_any_form_by_amount_by_code_and_by_account(admin_client, mpesa_config):
    owner = BorrowerFactory(phones=["+254712345678"])
    plain = stored_payment(mpesa_config, trans_id="SKPLAIN001", msisdn="254712345678", msisdn_kind="plain")
    hashed = stored_payment(
        mpesa_config, trans_id="SKHASH0002", msisdn=msisdn_hash("+254712345678"), msisdn_kind="hashed"
    )
    owned = stored_payment(mpesa_config, trans_id="SKOWNED003", borrower=owner, amount=D("1500.00"))
    other = stored_payment(
        mpesa_config, trans_id="SKOTHER004", msisdn="254722000111", msisdn_kind="plain", bill_reference="rent"
    )

    def found(term: str) -> set[str]:
        response = admin_client.get(changelist("mpesatransaction"), {"q": term})
        assert response.status_code == 200
        return {tx.trans_id for tx in response.context["cl"].result_list}

    for term in ("0712345678", "+254 712 345 678", "254712345678", "712345678"):
        assert found(term) == {plain.trans_id, hashed.trans_id, owned.trans_id}, term
    assert found("1,500") == {owned.trans_id}
    assert found("1500.00") == {owned.trans_id}
    assert found("skother004") == {other.trans_id}
    assert found("rent") == {other.trans_id}


def test_the_list_masks_phone_numbers(admin_client, mpesa_config):
    stored_payment(mpesa_config, msisdn="254712345678", msisdn_kind="plain")

    page = admin_client.get(changelist("mpesatransaction")).content.decode()

    assert "2547*****678" in page and "254712345678" not in page


def test_officers_see_and_act_on_their_portfolio_only(officer_client, officer, mpesa_config):
    mine = make_loan("LOAN-000500", "5000", borrower=BorrowerFactory(loan_officer=officer))
    theirs = make_loan("LOAN-000501", "5000", borrower=BorrowerFactory(loan_officer=OfficerFactory()))
    own_tx = transaction_process(
        trans_id=stored_payment(
            mpesa_config,
            trans_id="SKMINE0001",
            bill_reference=mine.loan_number,
            raw_body='{"TransID": "SKMINE0001", "MSISDN": "254712345678"}',
        ).trans_id
    )
    other_tx = transaction_process(
        trans_id=stored_payment(
            mpesa_config, trans_id="SKTHEIRS02", bill_reference=theirs.loan_number
        ).trans_id
    )

    listing = officer_client.get(changelist("mpesatransaction"))
    assert [tx.trans_id for tx in listing.context["cl"].result_list] == [own_tx.trans_id]
    actions = [name for name, _ in listing.context["action_form"].fields["action"].choices]
    assert "reverse_payment" not in actions and "mark_reviewed" in actions

    own_page = officer_client.get(change_url(own_tx))
    assert own_page.status_code == 200 and "<td>repayment.posted</td>" in own_page.content.decode()
    # Raw payloads are for admins.
    assert "Confirmation request as received" not in own_page.content.decode()
    assert "254712345678" not in own_page.content.decode()

    response = officer_client.get(change_url(other_tx))
    assert response.status_code == 302 and response.url == reverse("admin:index")

    response = officer_client.post(
        changelist("mpesatransaction"),
        {"action": "mark_reviewed", "_selected_action": [other_tx.pk], "apply": "1", "note": "x"},
        follow=True,
    )
    other_tx.refresh_from_db()
    assert other_tx.reviewed_at is None

    response = officer_client.post(
        changelist("mpesatransaction"),
        {"action": "reverse_payment", "_selected_action": [own_tx.pk], "apply": "1", "reason": "x"},
        follow=True,
    )
    own_tx.refresh_from_db()
    assert own_tx.status == "processed"


def test_officers_can_only_assign_to_loans_they_can_see(officer_client, officer, mpesa_config):
    mine = make_loan("LOAN-000600", "5000", borrower=BorrowerFactory(loan_officer=officer))
    make_loan("LOAN-000601", "5000", borrower=BorrowerFactory(loan_officer=OfficerFactory()))
    tx = transaction_process(trans_id=stored_payment(mpesa_config, bill_reference=mine.loan_number).trans_id)

    page = submit_action(
        officer_client, "mpesatransaction", "assign_to_loan", [tx.pk], loan_number="LOAN-000601", reason="x"
    )

    assert "no loan numbered LOAN-000601" in " ".join(page.context["form"].errors["loan_number"])


def test_payments_are_read_only(admin_client, mpesa_config):
    tx = stored_payment(mpesa_config)

    assert admin_client.get(reverse("admin:payments_mpesatransaction_add")).status_code == 403
    assert (
        admin_client.get(reverse("admin:payments_mpesatransaction_delete", args=[tx.pk])).status_code == 403
    )
    response = admin_client.post(change_url(tx), {"amount": "1.00", "status": "processed"})
    assert response.status_code == 403
    tx.refresh_from_db()
    assert (tx.amount, tx.status) == (D("1000.00"), "received")
    listing = admin_client.get(changelist("mpesatransaction"))
    assert "delete_selected" not in dict(listing.context["action_form"].fields["action"].choices)


# --- Callbacks and the outbox -------------------------------------------------------------------------


def test_callback_body_is_pretty_printed_and_escaped(admin_client, mpesa_config):
    callback = CallbackRequest.objects.create(
        kind="confirmation",
        config=mpesa_config,
        body='{"BillRefNumber": "<script>alert(1)</script>", "TransAmount": "10.00"}',
        headers={"Content-Type": "application/json"},
    )
    broken = CallbackRequest.objects.create(
        kind="confirmation", config=mpesa_config, body="not json <b>bold</b>", outcome="malformed"
    )

    page = admin_client.get(change_url(callback)).content.decode()
    pretty = '{\n  "BillRefNumber": "<script>alert(1)</script>",\n  "TransAmount": "10.00"\n}'
    assert f"<pre>{escape(pretty)}</pre>" in page
    assert "<script>alert(1)" not in page
    assert escape('{\n  "Content-Type": "application/json"\n}') in page

    page = admin_client.get(change_url(broken)).content.decode()
    assert "<pre>not json &lt;b&gt;bold&lt;/b&gt;</pre>" in page
    assert admin_client.post(change_url(broken), {"body": "{}"}).status_code == 403


def test_officers_do_not_see_raw_callbacks_even_with_the_permission(officer_client, officer, mpesa_config):
    callback = CallbackRequest.objects.create(kind="confirmation", config=mpesa_config, body="{}")
    officer.user_permissions.add(Permission.objects.get(codename="view_callbackrequest"))

    assert officer_client.get(changelist("callbackrequest")).status_code == 403
    assert officer_client.get(change_url(callback)).status_code == 403


def test_outbox_lists_masked_recipients_and_retries_failed_messages(
    admin_client, django_capture_on_commit_callbacks
):
    failed = OutboxMessage.objects.create(
        channel="sms",
        recipient="+254712345678",
        body="Receipt",
        status="failed",
        attempts=5,
        last_error="down",
    )
    sent = OutboxMessage.objects.create(channel="sms", recipient="+254712345679", body="Hi", status="sent")

    page = admin_client.get(reverse("admin:core_outboxmessage_changelist")).content.decode()
    assert "2547*****678" in page and "+254712345678" not in page and "254712345678" not in page
    assert admin_client.get(reverse("admin:core_outboxmessage_add")).status_code == 403

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:core_outboxmessage_changelist"),
            {"action": "retry_now", "_selected_action": [failed.pk, sent.pk], "index": 0},
            follow=True,
        )

    assert _messages(response) == [
        (
            "success",
            "Queued 1 message(s) for delivery now. 1 were skipped: only pending or failed messages are retried.",
        )
    ]
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.provider_id) == ("sent", 6, f"console-{failed.pk}")
    sent.refresh_from_db()
    assert sent.attempts == 0


def test_the_outbox_is_for_admins(officer_client):
    assert officer_client.get(reverse("admin:core_outboxmessage_changelist")).status_code == 403


def test_an_admin_role_without_superuser_needs_model_permissions(client, mpesa_config):
    admin = AdminFactory(is_superuser=False)
    client.force_login(admin)

    assert client.get(changelist("mpesaconfiguration")).status_code == 403
    admin.user_permissions.add(Permission.objects.get(codename="view_mpesaconfiguration"))
    assert client.get(changelist("mpesaconfiguration")).status_code == 200


def test_the_source_is_listed_filterable_and_on_the_change_page(admin_client, mpesa_config):
    sources = {
        "SKCALL0001": "callback",
        "SKPULL0001": "pull",
        "SKSTAT0001": "statement",
        "SKSTQ00001": "status_query",
    }
    for trans_id, source in sources.items():
        stored_payment(mpesa_config, trans_id=trans_id, source=source)

    page = admin_client.get(changelist("mpesatransaction")).content.decode()

    cells = dict(re.findall(r'>(SK[A-Z0-9]{8})</a>.*?<td class="field-source">([^<]*)</td>', page, re.S))
    assert cells == {
        "SKCALL0001": "Callback",
        "SKPULL0001": "Pull Transactions",
        "SKSTAT0001": "Statement import",
        "SKSTQ00001": "Transaction Status query",
    }
    assert "?source__exact=statement" in page  # the filter's choices
    filtered = admin_client.get(
        changelist("mpesatransaction"), {"source__exact": "statement"}
    ).content.decode()
    assert re.findall(r">(SK[A-Z0-9]{8})</a>", filtered) == ["SKSTAT0001"]
    detail = admin_client.get(
        change_url(MpesaTransaction.objects.get(trans_id="SKSTQ00001"))
    ).content.decode()
    assert re.search(
        r"<label>Source:</label>\s*<div class=\"readonly\">Transaction Status query</div>", detail
    )


# --- Breadcrumbs ----------------------------------------------------------------------------------


def breadcrumbs(page) -> str:
    """The breadcrumbs of an admin page as a person reads them."""
    assert page.status_code == 200
    crumbs = re.search(r'<div class="breadcrumbs">(.*?)</div>', page.content.decode(), re.DOTALL).group(1)
    return " ".join(re.sub(r"<[^>]+>", " ", crumbs).replace("&rsaquo;", ">").split())


def test_the_admin_pages_under_a_model_lead_back_through_the_same_breadcrumbs(
    admin_client, admin_user, mpesa_config
):
    loan = LoanFactory(loan_number="LOAN-000321")
    tx = stored_payment(mpesa_config, bill_reference="LOAN-000321")
    officer = OfficerFactory(username="otieno")
    loans = reverse("admin:core_loan_changelist")

    action = admin_client.post(loans, {"action": "write_off", "_selected_action": [loan.pk], "index": 0})
    bulk = action_page(admin_client, "mpesatransaction", "reprocess", [tx.pk])
    link = admin_client.get(reverse("admin:core_user_telegram_link", args=[officer.pk]))
    upload = admin_client.get(reverse("admin:payments_mpesatransaction_import_statement"))

    assert breadcrumbs(action) == f"Home > Lending > Loans > {loan} > Write off: {loan}"
    assert f'href="{change_url(loan)}"' in action.content.decode()
    assert breadcrumbs(bulk) == "Home > M-Pesa payments > Mpesa transactions > Reprocess 1 payment"
    assert breadcrumbs(link) == "Home > Lending > Users > otieno > Telegram link code"
    assert breadcrumbs(upload) == "Home > M-Pesa payments > Mpesa transactions > Import an M-Pesa statement"

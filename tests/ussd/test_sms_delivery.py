"""/ussd/sms/delivery/: delivery reports update the outgoing SMS they name; a number that keeps
failing is flagged on the borrower's phone; duplicates and late reports change nothing."""

import pytest

from core.models import BorrowerPhone, OutboxMessage
from tests.ussd.conftest import PHONE, form_fixture
from ussd.models import InboundRequest

pytestmark = pytest.mark.django_db

PROVIDER_ID = "ATXid_5f2b8c1d0e9a4b3c"


def sent_sms(provider_id: str = PROVIDER_ID, recipient: str = PHONE) -> OutboxMessage:
    return OutboxMessage.objects.create(
        channel="sms", recipient=recipient, body="receipt", status="sent", provider_id=provider_id
    )


def report(post_form, name: str, **overrides: str):
    response = post_form("/ussd/sms/delivery/", form_fixture(name, **overrides))
    assert response.status_code == 200
    return response


def test_a_success_report_updates_the_message_it_names(post_form, borrower):
    message, other = sent_sms(), sent_sms("ATXid_other")
    report(post_form, "sms_delivery_success.txt")
    message.refresh_from_db()
    other.refresh_from_db()
    assert (message.delivery_status, message.delivery_error, message.delivery_reported_at is not None) == (
        "Success",
        "",
        True,
    )
    assert other.delivery_status == ""


def test_a_failure_report_keeps_the_reason(post_form, borrower):
    message = sent_sms()
    report(post_form, "sms_delivery_failed.txt")
    message.refresh_from_db()
    assert (message.delivery_status, message.delivery_error) == ("Failed", "UserInBlackList")


def test_a_repeated_or_late_report_changes_nothing(post_form, borrower):
    message = sent_sms()
    report(post_form, "sms_delivery_failed.txt")
    report(post_form, "sms_delivery_failed.txt")
    report(post_form, "sms_delivery_success.txt", status="Buffered")
    message.refresh_from_db()
    assert message.delivery_status == "Failed"
    assert BorrowerPhone.objects.get(number=PHONE).delivery_failures == 1  # counted once


def test_a_number_that_keeps_failing_is_flagged_and_a_success_clears_it(post_form, borrower):
    for n in range(3):
        sent_sms(f"ATXid_{n}")
        report(post_form, "sms_delivery_failed.txt", id=f"ATXid_{n}", failureReason="DeliveryFailure")
        phone = BorrowerPhone.objects.get(number=PHONE)
        assert phone.delivery_failures == n + 1
        assert (phone.sms_failing_since is not None) == (n == 2)
    sent_sms("ATXid_ok")
    report(post_form, "sms_delivery_success.txt", id="ATXid_ok")
    phone = BorrowerPhone.objects.get(number=PHONE)
    assert (phone.delivery_failures, phone.sms_failing_since) == (0, None)


def test_an_unknown_id_is_kept_and_answered(post_form, borrower):
    report(post_form, "sms_delivery_success.txt", id="ATXid_nobody")
    row = InboundRequest.objects.get()
    assert (row.kind, row.outcome, row.error) == ("sms_delivery", "handled", "no outgoing SMS has this id")


def test_secret_malformed_and_oversized(post_form, borrower):
    message = sent_sms()
    assert (
        post_form("/ussd/sms/delivery/", form_fixture("sms_delivery_failed.txt"), secret="bad").status_code
        == 403
    )
    assert not InboundRequest.objects.exists()
    assert post_form("/ussd/sms/delivery/", b"id=ATXid_5f2b8c1d0e9a4b3c").status_code == 400
    big = form_fixture("sms_delivery_failed.txt") + b"&x=" + b"y" * 17000
    assert post_form("/ussd/sms/delivery/", big).status_code == 413
    message.refresh_from_db()
    assert message.delivery_status == ""
    assert list(InboundRequest.objects.values_list("outcome", flat=True)) == ["malformed", "malformed"]

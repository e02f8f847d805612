"""Django admin for the borrower channels: staff reset a PIN (audited); hashes are never shown."""

import pytest
from django.contrib.auth.models import Permission

from core.models import AuditEvent
from ussd.models import BorrowerPin
from ussd.services.pins import pin_set

pytestmark = pytest.mark.django_db


def test_an_admin_resets_a_pin_and_it_is_audited(admin_client, admin_user, borrower):
    record = pin_set(borrower=borrower, pin="4829")
    page = admin_client.get(f"/admin/ussd/borrowerpin/{record.pk}/change/")
    assert page.status_code == 200
    assert record.pin_hash not in page.content.decode() and record.salt not in page.content.decode()
    response = admin_client.post(
        "/admin/ussd/borrowerpin/", {"action": "reset_pin", "_selected_action": [record.pk]}, follow=True
    )
    assert response.status_code == 200
    assert "1 PIN(s) reset." in response.content.decode()
    assert not BorrowerPin.objects.exists()
    event = AuditEvent.objects.get(action="ussd.pin_reset")
    assert (event.actor_user, event.borrower) == (admin_user, borrower)


def test_an_officer_sees_only_their_portfolios_pins(client, officer, borrower):
    from tests.factories import BorrowerFactory, OfficerFactory

    mine = pin_set(borrower=borrower, pin="4829")
    theirs = pin_set(borrower=BorrowerFactory(loan_officer=OfficerFactory()), pin="4829")
    officer.user_permissions.add(*Permission.objects.filter(codename__endswith="borrowerpin"))
    client.force_login(officer)
    listing = client.get("/admin/ussd/borrowerpin/")
    assert listing.status_code == 200
    ids = [obj.pk for obj in listing.context["cl"].result_list]
    assert ids == [mine.pk] and theirs.pk not in ids

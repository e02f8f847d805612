"""Data migrations of the borrower channels, run against rows stored before them."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("ussd", "0001_borrower_channels")]
AFTER = [("ussd", "0002_mask_stored_pins")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_pins_stored_before_masking_are_masked_with_every_other_input():
    old = migrate(BEFORE)
    try:
        requests = old.get_model("ussd", "InboundRequest").objects
        ussd = requests.create(
            kind="ussd",
            body="sessionId=ATUid_1&phoneNumber=%2B254712345678&text=48213%2A4829*1&networkCode=63902",
        )
        first = requests.create(kind="ussd", body="sessionId=ATUid_1&phoneNumber=%2B254712345678&text=")
        event = requests.create(kind="ussd_event", body="sessionId=ATUid_1&input=4829%2A1&status=Success")
        sms = requests.create(kind="sms", body="id=ATXid_1&from=%2B254712345678&text=BAL%2A4829")
        old.get_model("ussd", "UssdSessionEnd").objects.create(
            session_id="ATUid_1", phone="+254712345678", input="48213*****1"
        )

        new = migrate(AFTER)

        bodies = dict(new.get_model("ussd", "InboundRequest").objects.values_list("pk", "body"))
        assert bodies == {
            ussd.pk: "sessionId=ATUid_1&phoneNumber=%2B254712345678&text=xxxx%2Axxxx*xxxx&networkCode=63902",
            first.pk: "sessionId=ATUid_1&phoneNumber=%2B254712345678&text=",
            event.pk: "sessionId=ATUid_1&input=xxxx%2Axxxx&status=Success",
            sms.pk: "id=ATXid_1&from=%2B254712345678&text=BAL%2A4829",  # an SMS holds no PIN
        }
        assert new.get_model("ussd", "UssdSessionEnd").objects.get().input == "xxxx*****xxxx"
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

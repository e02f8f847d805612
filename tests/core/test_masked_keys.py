"""The masked-number keys (``core.names``, ``MaskedPhoneKey``): what they are, and that every way a
phone or a name is written keeps them in step."""

import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core.models import Borrower, BorrowerPhone, MaskedPhoneKey
from core.names import masked_phone_keys, name_token_list, name_tokens
from core.services import (
    borrower_create,
    borrower_phone_add,
    borrower_update,
    loan_import_csv,
    masked_keys_rebuild,
)
from tests.factories import BorrowerFactory

pytestmark = pytest.mark.django_db


def expected_keys() -> set[tuple[int, int, str]]:
    """(phone, borrower, key) of every key that the phones and names on file call for."""
    return {
        (phone_id, borrower_id, key)
        for phone_id, borrower_id, number, full_name in BorrowerPhone.objects.values_list(
            "id", "borrower_id", "number", "borrower__full_name"
        )
        for key in masked_phone_keys(number, full_name)
    }


def stored_keys() -> set[tuple[int, int, str]]:
    return set(MaskedPhoneKey.objects.values_list("phone_id", "borrower_id", "key"))


def keys_of(number: str) -> set[str]:
    return set(MaskedPhoneKey.objects.filter(phone__number=number).values_list("key", flat=True))


# --- the keys -------------------------------------------------------------------------------------


def test_name_tokens_are_lower_case_runs_of_letters_longer_than_one():
    assert name_token_list("Mary-Jane  O'NEIL", "mary", "J. Otieno2nd") == [
        "mary",
        "jane",
        "neil",
        "otieno",
        "nd",
    ]
    assert name_tokens("NICHOLAS", "", "mutai") == {"nicholas", "mutai"}
    assert name_tokens("", "A", "- 7") == set()


def test_a_phone_has_each_token_and_each_pair_under_its_last_three_digits():
    assert masked_phone_keys("+254712345126", "Nicholas Kiprono MUTAI") == [
        "126:nicholas",
        "126:kiprono",
        "126:mutai",
        "126:kiprono+nicholas",
        "126:mutai+nicholas",
        "126:kiprono+mutai",
    ]
    assert masked_phone_keys("+254712345126", "Mutai Mutai") == ["126:mutai"]
    assert masked_phone_keys("+254712345126", "X") == []


def test_a_long_name_pairs_its_first_five_tokens_and_marks_the_others():
    keys = masked_phone_keys("+254712345126", "Aa Bb Cc Dd Ee Ff Gg")
    assert keys[:7] == ["126:aa", "126:bb", "126:cc", "126:dd", "126:ee", "126:ff", "126:gg"]
    assert len(keys[7:-2]) == 10 and "126:aa+ee" in keys and "126:aa+ff" not in keys
    assert keys[-2:] == ["126:ff+*", "126:gg+*"]
    # However long the name, a phone has at most one key per token and 10 pairs.
    many = " ".join(f"{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(66))
    assert len(masked_phone_keys("+254712345126", many)) == 66 + 10 + 61


# --- kept in step ---------------------------------------------------------------------------------


def test_a_new_borrowers_phones_get_their_keys(system_actor):
    borrower_create(full_name="Achieng Odhiambo", phones=["0712345678", "0110123456"], actor=system_actor)
    borrower_phone_add(borrower=Borrower.objects.get(), number="0733190462", actor=system_actor)
    assert keys_of("+254110123456") == {"456:achieng", "456:odhiambo", "456:achieng+odhiambo"}
    assert stored_keys() == expected_keys() and len(stored_keys()) == 9


def test_keys_follow_a_renamed_borrower(system_actor):
    borrower = BorrowerFactory(full_name="Nicholas Mutai", phones=["+254712345126"])
    BorrowerFactory(full_name="Nicholas Ouma", phones=["+254713000126"])
    borrower_update(borrower=borrower, changes={"full_name": "Nicholas Kiprono"}, actor=system_actor)
    assert keys_of("+254712345126") == {"126:nicholas", "126:kiprono", "126:kiprono+nicholas"}
    assert stored_keys() == expected_keys()

    borrower.refresh_from_db()
    borrower.full_name = "Kiprono Wekesa"
    borrower.save()
    assert keys_of("+254712345126") == {"126:kiprono", "126:wekesa", "126:kiprono+wekesa"}
    assert stored_keys() == expected_keys()


def test_keys_follow_a_rename_in_the_admin(admin_client):
    borrower = BorrowerFactory(full_name="Baraka Mutua", phones=["+254712345678"])
    response = admin_client.post(
        reverse("admin:core_borrower_change", args=[borrower.pk]),
        {
            "full_name": "Baraka Mutiso",
            "national_id": "",
            "preferred_language": "en",
            "loan_officer": "",
            "phones-TOTAL_FORMS": "1",
            "phones-INITIAL_FORMS": "1",
            "phones-0-id": borrower.phones.get().pk,
            "phones-0-borrower": borrower.pk,
            "loans-TOTAL_FORMS": "0",
            "loans-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    assert keys_of("+254712345678") == {"678:baraka", "678:mutiso", "678:baraka+mutiso"}


def test_keys_follow_a_changed_number():
    phone = BorrowerFactory(full_name="Nicholas Mutai", phones=["+254712345126"]).phones.get()
    phone.number = "+254722000999"
    phone.save(update_fields=["number"])
    assert keys_of("+254722000999") == {"999:nicholas", "999:mutai", "999:mutai+nicholas"}
    assert stored_keys() == expected_keys() and len(stored_keys()) == 3


def test_keys_follow_a_phone_moved_to_another_borrower():
    phone = BorrowerFactory(
        full_name="Nicholas Mutai", phones=["+254712345126", "+254712345127"]
    ).phones.first()
    phone.borrower = BorrowerFactory(full_name="Achieng Odhiambo", phones=[])
    phone.save()
    assert keys_of(phone.number) == {"126:achieng", "126:odhiambo", "126:achieng+odhiambo"}
    assert stored_keys() == expected_keys() and len(stored_keys()) == 6


def test_a_deleted_phone_takes_its_keys_and_a_deleted_borrower_all_of_them():
    borrower = BorrowerFactory(full_name="Nicholas Mutai", phones=["+254712345126", "+254712345127"])
    kept = BorrowerFactory(full_name="Achieng Odhiambo")
    borrower.phones.get(number="+254712345126").delete()
    assert keys_of("+254712345126") == set() and keys_of("+254712345127")
    assert stored_keys() == expected_keys()
    borrower.delete()
    assert {borrower_id for _, borrower_id, _ in stored_keys()} == {kept.pk}


def test_writes_that_change_neither_number_nor_name_leave_the_keys_alone():
    borrower = BorrowerFactory(full_name="Nicholas Mutai")
    phone = borrower.phones.get()
    with CaptureQueriesContext(connection) as queries:
        phone.delivery_failures = 2
        phone.save(update_fields=["delivery_failures"])
        borrower.preferred_language = "sw"
        borrower.save(update_fields=["preferred_language", "updated_at"])
    assert len(queries) == 2
    assert stored_keys() == expected_keys()


def test_an_import_writes_the_keys_of_new_borrowers_and_of_renamed_ones(system_actor):
    BorrowerFactory(full_name="Jane Wanjiru", phones=["+254712345678"])
    book = (
        "loan_number,borrower_name,phone,principal,due_date\n"
        "LOAN-000101,Jane Wanjiru Kamau,0712345678,1000,2099-01-31\n"
        "LOAN-000102,Peter Otieno,0722000111,2000,2099-01-31\n"
    )
    result = loan_import_csv(file=io.StringIO(book), actor=system_actor)
    assert (result.borrowers_created, result.borrowers_updated) == (1, 1)
    assert keys_of("+254722000111") == {"111:peter", "111:otieno", "111:otieno+peter"}
    assert "678:kamau+wanjiru" in keys_of("+254712345678")
    assert stored_keys() == expected_keys() and len(stored_keys()) == 3 + 6


def test_seed_demo_writes_every_phones_keys():
    with override_settings(DEBUG=True):
        call_command("seed_demo", stdout=io.StringIO())
    assert stored_keys() == expected_keys()
    assert "530:njoroge+peter" in keys_of("+254722481530")


def test_rebuilding_repairs_keys_a_raw_write_left_behind():
    borrower = BorrowerFactory(full_name="Nicholas Mutai", phones=["+254712345126"])
    other = BorrowerFactory(full_name="Achieng Odhiambo")
    Borrower.objects.filter(pk=borrower.pk).update(full_name="Grace Wanjiku")  # around save()
    MaskedPhoneKey.objects.filter(borrower=other).delete()
    assert masked_keys_rebuild(borrower_ids=[borrower.pk, other.pk, borrower.pk]) == 6
    assert stored_keys() == expected_keys()
    assert masked_keys_rebuild(borrower_ids=[]) == 0


@pytest.mark.django_db(transaction=True)
def test_the_migration_fills_the_keys_of_the_phones_on_file():
    executor = MigrationExecutor(connection)
    old = executor.loader.project_state([("core", "0008_masked_phone_key")]).apps
    executor.migrate([("core", "0008_masked_phone_key")])
    try:
        borrowers = old.get_model("core", "Borrower").objects
        phones = old.get_model("core", "BorrowerPhone").objects
        for position, name in enumerate(["Nicholas Kiprono Mutai", "Achieng Odhiambo", "X"]):
            borrower = borrowers.create(full_name=name)
            for number in (f"+25471234512{position}", f"+25411000000{position}"):
                phones.create(borrower=borrower, number=number, msisdn_hash=number.ljust(64, "0"))
        assert not old.get_model("core", "MaskedPhoneKey").objects.exists()

        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

        assert stored_keys() == expected_keys() and len(stored_keys()) == 2 * 6 + 2 * 3
        assert keys_of("+254110000000") == {
            "000:nicholas",
            "000:kiprono",
            "000:mutai",
            "000:kiprono+nicholas",
            "000:mutai+nicholas",
            "000:kiprono+mutai",
        }
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

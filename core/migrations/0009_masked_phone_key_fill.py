"""Fill the masked-number keys of the phones already on file, a batch of phones at a time."""

from django.db import migrations

# The keys are made as the code makes them (a pure function of a number and a name), so that the
# rows written here are the rows masked_keys_rebuild would write.
from core.names import masked_phone_keys

BATCH_SIZE = 2000


def fill(apps, schema_editor):
    BorrowerPhone = apps.get_model("core", "BorrowerPhone")
    MaskedPhoneKey = apps.get_model("core", "MaskedPhoneKey")
    db = schema_editor.connection.alias
    after = 0
    while True:
        phones = list(
            BorrowerPhone.objects.using(db)
            .filter(id__gt=after)
            .order_by("id")
            .values_list("id", "borrower_id", "number", "borrower__full_name")[:BATCH_SIZE]
        )
        if not phones:
            return
        MaskedPhoneKey.objects.using(db).bulk_create(
            MaskedPhoneKey(key=key, phone_id=phone_id, borrower_id=borrower_id)
            for phone_id, borrower_id, number, full_name in phones
            for key in masked_phone_keys(number, full_name)
        )
        after = phones[-1][0]


def empty(apps, schema_editor):
    apps.get_model("core", "MaskedPhoneKey").objects.using(schema_editor.connection.alias).all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ("core", "0008_masked_phone_key"),
    ]

    operations = [
        migrations.RunPython(fill, empty),
    ]

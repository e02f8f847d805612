import hashlib

from django.db import migrations, models

import core.crypto
import payments.models

TABLE = "payments_mpesaconfiguration"


def encrypt_tokens(apps, schema_editor):
    # Raw SQL: the historical model's field would try to decrypt the plain tokens it reads.
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"SELECT id, callback_token FROM {TABLE}")  # noqa: S608 - a constant table name
        for pk, token in cursor.fetchall():
            cursor.execute(
                f"UPDATE {TABLE} SET callback_token = %s, callback_token_digest = %s WHERE id = %s",  # noqa: S608
                [core.crypto.encrypt(token), hashlib.sha256(token.encode("utf-8")).hexdigest(), pk],
            )


def decrypt_tokens(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"SELECT id, callback_token FROM {TABLE}")  # noqa: S608 - a constant table name
        for pk, token in cursor.fetchall():
            cursor.execute(
                f"UPDATE {TABLE} SET callback_token = %s WHERE id = %s",  # noqa: S608
                [core.crypto.decrypt(token), pk],
            )


class Migration(migrations.Migration):
    dependencies = [("payments", "0003_fewer_hot_path_indexes")]

    operations = [
        migrations.AddField(
            model_name="mpesaconfiguration",
            name="callback_token_digest",
            field=models.CharField(editable=False, max_length=64, null=True),
        ),
        migrations.AlterField(
            model_name="mpesaconfiguration",
            name="callback_token",
            field=core.crypto.EncryptedTextField(default=payments.models.new_callback_token),
        ),
        migrations.RunPython(encrypt_tokens, decrypt_tokens),
        migrations.AlterField(
            model_name="mpesaconfiguration",
            name="callback_token_digest",
            field=models.CharField(editable=False, max_length=64, unique=True),
        ),
    ]

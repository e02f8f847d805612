from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from payments.models import MpesaConfiguration

pytestmark = pytest.mark.django_db

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def stored_secret(config: MpesaConfiguration) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT consumer_secret FROM {MpesaConfiguration._meta.db_table} WHERE id = %s", [config.pk]
        )
        return cursor.fetchone()[0]


def test_secrets_are_stored_encrypted_and_read_back_plain(settings):
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    config = MpesaConfiguration.objects.create(
        business_short_code="600984", base_url="https://pay.haven.example", consumer_secret="s3cret-value"
    )
    raw = stored_secret(config)
    assert "s3cret-value" not in raw
    assert Fernet(OLD).decrypt(raw.encode()) == b"s3cret-value"
    assert MpesaConfiguration.objects.get().consumer_secret == "s3cret-value"


def test_rotation_re_encrypts_with_the_newest_key(settings):
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    config = MpesaConfiguration.objects.create(
        business_short_code="600984", base_url="https://pay.haven.example", consumer_secret="s3cret-value"
    )
    settings.FIELD_ENCRYPTION_KEYS = [NEW, OLD]  # new key first; the old one still decrypts
    assert MpesaConfiguration.objects.get().consumer_secret == "s3cret-value"

    out = StringIO()
    call_command("rotate_encryption_keys", stdout=out)

    assert "payments.MpesaConfiguration: re-encrypted 1 row(s)" in out.getvalue()
    assert Fernet(NEW).decrypt(stored_secret(config).encode()) == b"s3cret-value"
    settings.FIELD_ENCRYPTION_KEYS = [NEW]  # the old key can now be dropped
    assert MpesaConfiguration.objects.get().consumer_secret == "s3cret-value"


def test_a_missing_key_is_a_clear_error(settings):
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    MpesaConfiguration.objects.create(
        business_short_code="600984", base_url="https://pay.haven.example", consumer_secret="s3cret-value"
    )
    settings.FIELD_ENCRYPTION_KEYS = [NEW]
    with pytest.raises(ImproperlyConfigured, match="cannot be decrypted"):
        MpesaConfiguration.objects.get()

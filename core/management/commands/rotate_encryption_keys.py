"""Re-encrypt every stored secret with the newest key in FIELD_ENCRYPTION_KEYS.

Rotation: put a new key first in FIELD_ENCRYPTION_KEYS (keep the old ones after it), deploy, run
this command, then remove the old keys.
"""

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from core.crypto import EncryptedTextField


class Command(BaseCommand):
    help = "Re-encrypt every encrypted field with the newest key in FIELD_ENCRYPTION_KEYS."

    def handle(self, *args, **options) -> None:
        total = 0
        for model in apps.get_models():
            fields = [f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
            if not fields:
                continue
            count = 0
            with transaction.atomic():
                # Loading decrypts with whichever key matches; saving encrypts with the newest.
                # _default_manager: every model has one, and not every model names it "objects".
                rows = model._default_manager.select_for_update().only("pk", *fields)
                for obj in rows.iterator(chunk_size=500):
                    obj.save(update_fields=fields)
                    count += 1
            self.stdout.write(f"{model._meta.label}: re-encrypted {count} row(s) ({', '.join(fields)})")
            total += count
        self.stdout.write(self.style.SUCCESS(f"Done: {total} row(s) now use the newest key."))

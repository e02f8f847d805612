from django.apps import AppConfig
from django.core.management import call_command
from django.db.models.signals import post_migrate


def _create_cache_table(
    sender: AppConfig, using: str = "default", verbosity: int = 1, **kwargs: object
) -> None:
    # Without Redis the cache is a database table (settings.CACHES); migrate creates it, so every
    # way of setting up a database (make run, the release steps, the test database) has it. Does
    # nothing when it exists or when the cache is not in the database.
    call_command("createcachetable", database=using, verbosity=max(0, verbosity - 1))


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Lending"

    def ready(self) -> None:
        post_migrate.connect(_create_cache_table, sender=self, dispatch_uid="core.create_cache_table")

        from core.metrics import OutboxCollector, collector_register

        collector_register(OutboxCollector())

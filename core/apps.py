from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Lending"

    def ready(self) -> None:
        from core.metrics import OutboxCollector, collector_register

        collector_register(OutboxCollector())

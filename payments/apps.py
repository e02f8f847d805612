from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "M-Pesa payments"

    def ready(self) -> None:
        from core.metrics import collector_register
        from payments.metrics import PaymentsCollector

        collector_register(PaymentsCollector())

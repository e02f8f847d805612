from django.apps import AppConfig


class DarajaEmulatorConfig(AppConfig):
    name = "payments.emulator"
    label = "daraja_emulator"
    verbose_name = "Daraja emulator (development)"

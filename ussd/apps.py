from django.apps import AppConfig


class UssdConfig(AppConfig):
    name = "ussd"
    verbose_name = "Borrower USSD and SMS"

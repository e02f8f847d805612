"""The emulator's ledger: every payment the emulated paybill received, whether or not its callbacks
were delivered. It is what M-Pesa itself knows, so the recovery APIs (Pull Transactions, Transaction
Status) answer from it. A table rather than the cache: it must be the same for every process (web
workers, the command that simulates a lost callback) and survive a cache flush."""

from django.db import models

from core.money import MoneyField


class EmulatedPayment(models.Model):
    trans_id = models.CharField(max_length=32, unique=True)
    short_code = models.CharField(max_length=12)
    trans_time = models.DateTimeField()
    amount = MoneyField()
    # The confirmation payload as M-Pesa built it (delivered or not): Transaction Status answers from it.
    payload = models.JSONField()
    msisdn = models.CharField(max_length=16, help_text="the payer, 2547XXXXXXXX (M-Pesa knows the number)")
    callbacks_delivered = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["trans_time", "id"]
        indexes = [models.Index(fields=["short_code", "trans_time"], name="emulated_payment_window")]

    def __str__(self) -> str:
        return f"{self.trans_id} {self.amount} to {self.short_code}"

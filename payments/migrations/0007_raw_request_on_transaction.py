# A payment's confirmation request is stored on the payment row itself. Existing payments take the
# source address, headers and body of the CallbackRequest they were linked to (which stays, as the
# record of that request), then the link goes.

from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def copy_raw_request(apps, schema_editor):
    MpesaTransaction = apps.get_model("payments", "MpesaTransaction")
    CallbackRequest = apps.get_model("payments", "CallbackRequest")
    linked = CallbackRequest.objects.filter(pk=OuterRef("callback_id"))
    MpesaTransaction.objects.filter(callback__isnull=False).update(
        source_ip=Subquery(linked.values("source_ip")[:1]),
        raw_headers=Subquery(linked.values("headers")[:1]),
        raw_body=Subquery(linked.values("body")[:1]),
    )


class Migration(migrations.Migration):

    dependencies = [
        ('payments', '0006_trans_id_unique_constraint'),
    ]

    operations = [
        migrations.AddField(
            model_name='mpesatransaction',
            name='raw_body',
            field=models.TextField(blank=True, default=''),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name='mpesatransaction',
            name='raw_headers',
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name='mpesatransaction',
            name='source_ip',
            field=models.GenericIPAddressField(blank=True, null=True),
        ),
        migrations.RunPython(copy_raw_request, migrations.RunPython.noop, elidable=True),
        migrations.RemoveField(
            model_name='mpesatransaction',
            name='callback',
        ),
    ]

# Requests stored before PINs were masked hold them in clear: the raw USSD requests' `text`, the raw
# end-of-session notifications' `input`, and (for anything but four digits) the stored `input`.
# Which of their inputs were typed at a PIN screen is no longer known (sessions live minutes in the
# cache), so every input of those rows is masked, as ussd.services.masking does for an input no
# session vouches for. The rules are copied here so that this migration keeps meaning what it meant.

import re
from urllib.parse import unquote_plus

from django.db import migrations

MASK = "xxxx"
RAW_SEPARATOR = re.compile(r"(\*|%2[aA])")
SEPARATOR = re.compile(r"(\*)")
BATCH = 500


def mask_all(typed, separator):
    parts = separator.split(typed)
    return "".join(MASK if index % 2 == 0 and part else part for index, part in enumerate(parts))


def mask_field(body, field):
    pairs = body.split("&")
    for index, pair in enumerate(pairs):
        name, equals, value = pair.partition("=")
        if equals and unquote_plus(name) == field:
            pairs[index] = name + equals + mask_all(value, RAW_SEPARATOR)
    return "&".join(pairs)


def mask_stored_pins(apps, schema_editor):
    InboundRequest = apps.get_model("ussd", "InboundRequest")
    UssdSessionEnd = apps.get_model("ussd", "UssdSessionEnd")
    fields = {"ussd": "text", "ussd_event": "input"}
    _rewrite(
        InboundRequest.objects.filter(kind__in=fields).only("pk", "kind", "body"),
        "body",
        lambda row: mask_field(row.body, fields[row.kind]),
    )
    _rewrite(
        UssdSessionEnd.objects.exclude(input="").only("pk", "input"),
        "input",
        lambda session: mask_all(session.input, SEPARATOR),
    )


def _rewrite(rows, field, masked_of):
    """Set ``field`` of each row of ``rows`` to ``masked_of(row)`` where that differs, in batches."""
    changed = []
    for row in rows.iterator(BATCH):
        masked = masked_of(row)
        if masked != getattr(row, field):
            setattr(row, field, masked)
            changed.append(row)
        if len(changed) >= BATCH:
            rows.model.objects.bulk_update(changed, [field])
            changed = []
    rows.model.objects.bulk_update(changed, [field])


class Migration(migrations.Migration):

    dependencies = [
        ("ussd", "0001_borrower_channels"),
    ]

    operations = [
        migrations.RunPython(mask_stored_pins, migrations.RunPython.noop, elidable=True),
    ]

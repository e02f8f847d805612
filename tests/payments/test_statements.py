"""Statement import with real org portal layouts: lost callbacks recovered and posted once, re-import
changes nothing, known receipts compared, non-pay-ins ignored, junk refused."""

import datetime
import logging
from decimal import Decimal as D
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command, execute_from_command_line

from core.dates import NAIROBI
from payments.models import CallbackRequest, MpesaTransaction
from payments.services.statements import NotAStatement, statement_import
from tests.payments.conftest import daraja_payload

pytestmark = pytest.mark.django_db

STATEMENTS = Path(__file__).resolve().parent.parent / "fixtures" / "statements"
UTILITY = STATEMENTS / "org_portal_utility.csv"


@pytest.fixture
def run(mpesa_config, django_capture_on_commit_callbacks):
    def run(path: Path):
        with django_capture_on_commit_callbacks(execute=True):
            return statement_import(path=path, config=mpesa_config)

    return run


def counts(result) -> tuple[int, ...]:
    return (result.read, result.known, result.created, result.mismatched, result.ignored, result.errors)


def test_lost_payments_on_the_statement_are_created_and_posted_once(run, loan):
    result = run(UTILITY)

    assert counts(result) == (6, 0, 3, 0, 3, 0)
    assert result.summary() == "read 6 known 0 created 3 mismatched 0 ignored 3 errors 0"
    tx = MpesaTransaction.objects.get(trans_id="SAB7LQ2X9K")
    assert (tx.source, tx.status, tx.amount, tx.bill_reference) == (
        "statement",
        "processed",
        D("1500.00"),
        "LOAN-000123",
    )
    assert tx.trans_time == datetime.datetime(2024, 3, 5, 8, 30, 12, tzinfo=NAIROBI)
    assert (tx.msisdn, tx.msisdn_kind, tx.first_name, tx.middle_name, tx.last_name) == (
        "254722000000",
        "plain",
        "NICHOLAS",
        "",
        "KIPRONO",
    )
    jane = MpesaTransaction.objects.get(trans_id="SAB7LQ2Y1M")
    assert (jane.first_name, jane.middle_name, jane.last_name, jane.bill_reference) == (
        "JANE",
        "WANJIKU",
        "DOE",
        "0712 345 678",
    )
    masked = MpesaTransaction.objects.get(trans_id="SAB7LR9X3D")
    assert (masked.msisdn, masked.msisdn_kind, masked.status) == ("2547******149", "masked", "processed")
    # Charges, a failed payment and a transfer between the organisation's own accounts are not payments.
    assert set(MpesaTransaction.objects.values_list("trans_id", flat=True)) == {
        "SAB7LQ2X9K",
        "SAB7LQ2Y1M",
        "SAB7LR9X3D",
    }
    loan.refresh_from_db()
    assert loan.outstanding == D("2800.00")


def test_importing_the_same_statement_again_changes_nothing(run, loan):
    run(UTILITY)
    before = list(MpesaTransaction.objects.order_by("id").values())

    again = run(UTILITY)

    assert counts(again) == (6, 3, 0, 0, 3, 0)
    assert list(MpesaTransaction.objects.order_by("id").values()) == before
    loan.refresh_from_db()
    assert loan.outstanding == D("2800.00")


def test_the_late_callback_after_a_statement_import_is_a_duplicate(run, loan, post_callback):
    run(UTILITY)
    payload = daraja_payload(
        "confirmation_hashed.json", TransID="SAB7LQ2X9K", TransTime="20240305083012", TransAmount="1500.00"
    )

    response = post_callback("confirmation", payload)

    assert response.json() == {"ResultCode": 0, "ResultDesc": "Success"}
    assert CallbackRequest.objects.get().outcome == "duplicate"
    loan.refresh_from_db()
    assert loan.outstanding == D("2800.00")


def test_a_known_receipt_with_another_amount_or_time_is_reported_not_changed(run, loan, post_callback):
    post_callback(
        "confirmation",
        daraja_payload(
            "confirmation_hashed.json",
            TransID="SAB7LQ2X9K",
            TransTime="20240305083012",
            TransAmount="1000.00",
        ),
    )
    post_callback(
        "confirmation",
        daraja_payload(
            "confirmation_hashed.json", TransID="SAB7LR9X3D", TransTime="20240305120000", TransAmount="700.00"
        ),
    )
    loan.refresh_from_db()
    before = loan.outstanding

    result = run(UTILITY)

    assert counts(result) == (6, 0, 1, 2, 3, 0)
    assert [str(mismatch) for mismatch in result.mismatches] == [
        "line 9: SAB7LQ2X9K: amount 1500.00 on the statement, 1000.00 here",
        "line 14: SAB7LR9X3D: time 2024-03-05 11:48:31 on the statement, 2024-03-05 12:00:00 here",
    ]
    assert MpesaTransaction.objects.get(trans_id="SAB7LQ2X9K").amount == D("1000.00")
    assert MpesaTransaction.objects.get(trans_id="SAB7LQ2X9K").source == "callback"
    loan.refresh_from_db()
    assert loan.outstanding == before


def test_semicolons_other_headers_and_day_first_dates(run, loan):
    result = run(STATEMENTS / "org_portal_semicolon_dayfirst.csv")

    assert counts(result) == (5, 0, 2, 0, 1, 2)
    assert result.problems == [
        "line 9: 'NOT-A-CODE' is not an M-Pesa receipt number",
        "line 10: '32/03/2024 09:30' is not a date and time this import knows",
    ]
    tx = MpesaTransaction.objects.get(trans_id="SBC1AB2CD3")
    assert (tx.trans_time, tx.amount, tx.bill_reference, tx.status) == (
        datetime.datetime(2024, 3, 5, 14, 2, tzinfo=NAIROBI),
        D("1000.00"),
        "loan 123",
        "processed",
    )
    assert MpesaTransaction.objects.get(trans_id="SBC1AB2CD4").amount == D("250.00")


def test_xlsx_export(run, loan):
    result = run(STATEMENTS / "org_portal.xlsx")

    assert counts(result) == (3, 0, 2, 0, 1, 0)
    tx = MpesaTransaction.objects.get(trans_id="SXL1AB2CD3")
    assert (tx.amount, tx.trans_time, tx.source) == (
        D("1200.50"),
        datetime.datetime(2024, 3, 5, 16, 20, 5, tzinfo=NAIROBI),
        "statement",
    )
    assert MpesaTransaction.objects.get(trans_id="SXL1AB2CD5").bill_reference == "254700000009"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "loans_export.csv",
            "loans_export.csv is not an M-Pesa statement: no header row with Receipt No., Completion Time "
            "and Paid In in its first rows",
        ),
        ("not_a_statement.png", "not_a_statement.png is not a statement: it is neither CSV nor XLSX"),
    ],
)
def test_a_file_that_is_not_a_statement_is_refused(run, name, message):
    with pytest.raises(NotAStatement) as refused:
        run(STATEMENTS / name)
    assert refused.value.detail == message
    assert not MpesaTransaction.objects.exists()


def test_a_broken_xlsx_is_refused(run, tmp_path):
    broken = tmp_path / "statement.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(NotAStatement, match=r"statement\.xlsx is not a readable XLSX workbook"):
        run(broken)


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_command_prints_one_summary_line(mpesa_config, loan, caplog):
    caplog.set_level(logging.DEBUG)
    out, err = StringIO(), StringIO()

    call_command("import_statement", str(UTILITY), stdout=out, stderr=err)

    assert out.getvalue() == "read 6 known 0 created 3 mismatched 0 ignored 3 errors 0\n"
    assert err.getvalue() == ""  # not a terminal: no bar
    # Nor a log line per payment (nor any below a warning) at the default verbosity, whatever LOG_LEVEL.
    assert [record.getMessage() for record in caplog.records] == []
    assert MpesaTransaction.objects.filter(source="statement").count() == 3


def test_command_draws_its_bar_in_place_on_a_terminal(mpesa_config, caplog):
    caplog.set_level(logging.INFO)
    out, err = Terminal(), Terminal()

    call_command("import_statement", str(UTILITY), stdout=out, stderr=err)

    assert out.getvalue() == "read 6 known 0 created 3 mismatched 0 ignored 3 errors 0\n"
    bar = err.getvalue()
    # Frames start with a carriage return and redraw the same line; one newline when it is done.
    assert bar.startswith("\rorg_portal_utility.csv: ") and bar.endswith("\n") and bar.count("\n") == 1
    assert "6 rows" in bar.rsplit("\r", 1)[-1]
    assert "\x1b[" not in bar  # not coloured as an error
    assert not caplog.records


def test_command_draws_no_bar_when_its_output_is_read_by_a_program(mpesa_config):
    out, err = StringIO(), Terminal()

    call_command("import_statement", str(UTILITY), stdout=out, stderr=err)

    assert out.getvalue() == "read 6 known 0 created 3 mismatched 0 ignored 3 errors 0\n"
    assert err.getvalue() == ""


def test_command_shows_each_payment_with_verbosity_two(mpesa_config, caplog):
    caplog.set_level(logging.DEBUG)

    call_command("import_statement", str(UTILITY), verbosity=2, stdout=StringIO(), stderr=StringIO())

    recovered = [r for r in caplog.records if r.name == "payments.services.recovery"]
    assert [(r.levelno, r.getMessage()) for r in recovered] == [
        (logging.DEBUG, f"mpesa payment {trans_id} recovered by statement")
        for trans_id in ("SAB7LQ2X9K", "SAB7LQ2Y1M", "SAB7LR9X3D")
    ]
    assert logging.root.manager.disable == logging.NOTSET  # the command leaves logging as it was


def test_a_recovered_payment_is_logged_at_info_by_a_pull_and_at_debug_by_a_statement(mpesa_config, caplog):
    import json

    from payments.parsing import parse_c2b_body
    from payments.services.recovery import transaction_record_recovered

    caplog.set_level(logging.DEBUG, logger="payments.services.recovery")
    for trans_id, source in (("SKPULL0001", "pull"), ("SKSTAT0001", "statement")):
        payload = parse_c2b_body(json.dumps(daraja_payload("confirmation_hashed.json", TransID=trans_id)))
        transaction_record_recovered(config=mpesa_config, payload=payload, source=source, evidence={})

    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "mpesa payment SKPULL0001 recovered by pull"),
        (logging.DEBUG, "mpesa payment SKSTAT0001 recovered by statement"),
    ]


def test_command_refuses_junk_with_one_line_and_a_non_zero_exit(mpesa_config, capsys):
    with pytest.raises(SystemExit) as exited:
        execute_from_command_line(["manage.py", "import_statement", str(STATEMENTS / "loans_export.csv")])

    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        "CommandError: loans_export.csv is not an M-Pesa statement: no header row with Receipt No., "
        "Completion Time and Paid In in its first rows"
    )
    assert "Traceback" not in err


def test_command_without_the_file(mpesa_config):
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_statement", "/nonexistent/statement.csv")


# --- The admin's upload page --------------------------------------------------------------------------


def test_admin_uploads_a_statement(admin_client, mpesa_config, loan, django_capture_on_commit_callbacks):
    from django.urls import reverse

    url = reverse("admin:payments_mpesatransaction_import_statement")
    assert (
        'id="import-statement"'
        in admin_client.get(reverse("admin:payments_mpesatransaction_changelist")).content.decode()
    )
    with UTILITY.open("rb") as upload, django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {"statement": upload, "short_code": "600984"})

    html = response.content.decode()
    assert response.status_code == 200
    assert "read 6 known 0 created 3 mismatched 0 ignored 3 errors 0" in html
    assert MpesaTransaction.objects.filter(source="statement").count() == 3
    loan.refresh_from_db()
    assert loan.outstanding == D("2800.00")

    with UTILITY.open("rb") as upload:
        again = admin_client.post(url, {"statement": upload, "short_code": "600984"})
    assert "read 6 known 3 created 0 mismatched 0 ignored 3 errors 0" in again.content.decode()


def test_admin_upload_refuses_junk_with_a_clear_error(admin_client, mpesa_config):
    from django.urls import reverse

    with (STATEMENTS / "not_a_statement.png").open("rb") as upload:
        response = admin_client.post(
            reverse("admin:payments_mpesatransaction_import_statement"),
            {"statement": upload, "short_code": "600984"},
        )

    assert response.status_code == 200
    assert "not_a_statement.png is not a statement: it is neither CSV nor XLSX" in response.content.decode()
    assert not MpesaTransaction.objects.exists()


def test_officers_cannot_import_statements(client, officer, mpesa_config):
    from django.urls import reverse

    client.force_login(officer)
    with UTILITY.open("rb") as upload:
        response = client.post(
            reverse("admin:payments_mpesatransaction_import_statement"),
            {"statement": upload, "short_code": "600984"},
        )

    assert response.status_code == 403
    assert not MpesaTransaction.objects.exists()


def test_admin_upload_refuses_an_oversized_file(admin_client, mpesa_config, monkeypatch):
    from django.urls import reverse

    from payments import forms

    monkeypatch.setattr(forms, "STATEMENT_MAX_BYTES", 1024 * 1024)
    big = STATEMENTS / "org_portal_utility.csv"
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("huge.csv", big.read_bytes() * 800, content_type="text/csv")
    response = admin_client.post(
        reverse("admin:payments_mpesatransaction_import_statement"),
        {"statement": upload, "short_code": "600984"},
    )

    assert "a statement is at most 1 MB" in response.content.decode()
    assert not MpesaTransaction.objects.exists()


def test_an_amount_too_large_for_the_books_is_an_error_and_the_rest_are_stored(run, tmp_path, loan):
    statement = tmp_path / "statement.csv"
    statement.write_text(
        "Receipt No.,Completion Time,Details,Transaction Status,Paid In,Withdrawn,Balance,Other Party Info,A/C No.\n"
        "SAB7LQ2X9K,2024-03-05 08:30:12,Pay Bill,Completed,1500.00,,99999999999999999.00,254722000000 - A B,X\n"
        "SAB7LQ2X9L,2024-03-05 08:31:12,Pay Bill,Completed,1234567890123.00,,,254722000000 - A B,X\n"
        "SAB7LQ2X9M,2024-03-05 08:32:12,Pay Bill,Completed,10.505,,,254722000000 - A B,X\n"
    )

    result = run(statement)

    assert counts(result) == (3, 0, 1, 0, 0, 2)
    assert result.problems == [
        "line 3: amount Decimal('1234567890123.00') is too large",
        "line 4: amount Decimal('10.505') has more than two decimal places",
    ]
    tx = MpesaTransaction.objects.get()
    assert (tx.trans_id, tx.org_account_balance) == (
        "SAB7LQ2X9K",
        None,
    )  # an unreadable balance costs nothing

"""The staff pages in a real browser: Debian's Chromium driven by Playwright, against pytest-django's
live server with the Daraja emulator mounted, so a test payment travels the whole way (form ->
simulate -> emulator -> validation and confirmation callbacks -> processing) over real HTTP.

Needs ``/usr/bin/chromium`` (``apt-get install chromium``; never ``playwright install``) and the
``playwright`` package; skipped with the reason otherwise. Screenshots go to artifacts/screenshots/
(or to $SCREENSHOT_DIR).
"""

import datetime
import os
import time
from decimal import Decimal as D
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from core.models import Loan
from payments.models import MpesaConfiguration, MpesaTransaction
from payments.parsing import NAIROBI
from payments.services import transaction_process
from tests.factories import AdminFactory, BorrowerFactory, LoanFactory, MpesaConfigurationFactory

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "pass-word-123"  # set by the staff factories
SCREENSHOTS = Path(
    os.environ.get("SCREENSHOT_DIR") or Path(django_settings.BASE_DIR) / "artifacts" / "screenshots"
)
PHONE = {"width": 360, "height": 800}
DESKTOP = {"width": 1280, "height": 800}
WAIT_MS = 10_000  # every wait is bounded; a payment through the emulator takes well under a second
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)"
)
expect = sync_api.expect

pytestmark = [
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)",
    ),
    # The project's URLs plus the Daraja emulator, whatever MPESA_EMULATOR_ENABLED was at start-up.
    pytest.mark.urls("tests.payments.emulator_urls"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API runs an asyncio event loop in this thread for as long as it is started.
    # Django then refuses ORM calls from this thread (SynchronousOnlyOperation), although nothing
    # here is async: the loop only talks to the browser. Allow them while the browser runs.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_api.sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=WAIT_MS * 3
            )
            yield chromium
            chromium.close()


@pytest.fixture
def emulator(live_server, settings) -> MpesaConfiguration:
    """The local Daraja emulator on the live server, and a configuration whose callbacks come back to it."""
    settings.MPESA_EMULATOR_ENABLED = True
    settings.MPESA_EMULATOR_URL = f"{live_server.url}/daraja-emulator"
    return MpesaConfigurationFactory(
        name="Browser paybill",
        consumer_key="browser-key",
        consumer_secret="browser-secret",
        base_url=live_server.url,
    )


@pytest.fixture
def loan(emulator) -> Loan:
    borrower = BorrowerFactory(full_name="Wanjiru Kamau", phones=["+254722000000"])
    return LoanFactory(borrower=borrower, loan_number="LOAN-000101", principal_disbursed=D("5000.00"))


@pytest.fixture
def open_tab(browser, live_server, emulator):
    """``open_tab(viewport)``: a browser tab of that size, logged in as an admin through the real
    admin login form, on the dashboard."""
    admin = AdminFactory(username="boss")
    contexts = []

    def open_tab(viewport: dict):
        context = browser.new_context(viewport=viewport)
        contexts.append(context)
        tab = context.new_page()
        tab.set_default_timeout(WAIT_MS)
        tab.set_default_navigation_timeout(WAIT_MS)
        login_page = tab.goto(f"{live_server.url}/payments/dashboard/")
        assert "/admin/login/?next=/payments/dashboard/" in tab.url
        assert login_page.ok, f"the admin login page answered HTTP {login_page.status}"
        tab.fill("#id_username", admin.username)
        tab.fill("#id_password", PASSWORD)
        tab.click("input[type=submit]")
        expect(tab.get_by_role("heading", name="Payments dashboard")).to_be_visible()
        return tab

    yield open_tab
    for context in contexts:
        context.close()


@pytest.fixture
def page(open_tab):
    """A phone-sized tab (360 px wide), logged in as an admin."""
    return open_tab({"width": 360, "height": 740})


def stored_payment(config: MpesaConfiguration, trans_id: str, **fields) -> MpesaTransaction:
    defaults = {
        "transaction_type": "Pay Bill",
        "trans_time": datetime.datetime(2026, 3, 10, 12, 0, tzinfo=NAIROBI),
        "amount": D("1000.00"),
        "business_short_code": config.business_short_code,
        "msisdn_kind": MpesaTransaction.MsisdnKind.MISSING,
        "config": config,
    }
    return MpesaTransaction.objects.create(trans_id=trans_id, **{**defaults, **fields})


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    return path


def outstanding(loan: Loan) -> D:
    loan.refresh_from_db()
    return loan.outstanding


def posts_while(page, action) -> list[str]:
    """The URLs the page POSTed to while ``action()`` ran (and shortly after)."""
    posted: list[str] = []

    def record(request) -> None:
        if request.method == "POST":
            posted.append(request.url)

    page.on("request", record)
    try:
        action()
        page.wait_for_timeout(300)  # a submission would have started by now
    finally:
        page.remove_listener("request", record)
    return posted


def off_screen(page, selector: str) -> list[str]:
    """Every element matching ``selector`` that is not wholly visible across: inside the window's
    width and inside every box that clips it (a scrolling table's box, the chart's SVG), described."""
    return page.evaluate(
        """(selector) => [...document.querySelectorAll(selector)].flatMap((element) => {
            const box = element.getBoundingClientRect();
            let left = 0, right = window.innerWidth;
            for (let parent = element.parentElement; parent; parent = parent.parentElement) {
                if (getComputedStyle(parent).overflowX === "visible") continue;
                const clip = parent.getBoundingClientRect();
                left = Math.max(left, clip.left + parent.clientLeft);
                right = Math.min(right, clip.left + parent.clientLeft + (parent.clientWidth || clip.width));
            }
            const inside = box.width > 0 && box.left >= left - 0.5 && box.right <= right + 0.5;
            return inside ? [] : [`${element.id || element.textContent.trim().slice(0, 30)}: `
                + `${box.left.toFixed(0)}..${box.right.toFixed(0)} not inside ${left.toFixed(0)}..${right.toFixed(0)}`];
        })""",
        selector,
    )


def test_dashboard_fits_a_phone_screen(page, emulator, loan):
    today = timezone.localdate()
    for trans_id, days_ago, amount in [("QBROWSE001", 0, "1200.00"), ("QBROWSE002", 2, "800.00")]:
        noon = datetime.datetime.combine(
            today - datetime.timedelta(days=days_ago), datetime.time(12), NAIROBI
        )
        stored_payment(emulator, trans_id, trans_time=noon, amount=D(amount), bill_reference="LOAN-000101")
        transaction_process(trans_id=trans_id)
    stored_payment(emulator, "QBROWSE003", bill_reference="rent", status=MpesaTransaction.Status.UNMATCHED)
    page.reload()

    expect(page.locator("svg.chart")).to_be_visible()
    expect(page.locator("svg.chart rect.chart-bar")).to_have_count(30)
    expect(page.locator("#today-count")).to_have_text("1")
    expect(page.locator("#last_7_days-amount")).to_have_text("2,000.00")
    expect(page.locator("#needing-attention .big")).to_have_text("1")
    # The stylesheet came from admin_ui/static (no CDN) and nothing is wider than the screen:
    # wide tables scroll inside their own box.
    assert page.evaluate("getComputedStyle(document.querySelector('header.top')).display") == "flex"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "dashboard.png")


def test_a_test_payment_is_processed_and_listed(page, live_server, emulator, loan):
    page.goto(f"{live_server.url}/payments/test-payment/")
    page.fill("#id_phone", "0722 000 000")
    page.fill("#id_amount", "1500")
    page.fill("#id_account", "LOAN-000101")
    page.click("#test-payment-form button[type=submit]")

    sent = page.locator("#sent-link")
    expect(sent).to_be_visible()
    trans_id = page.locator("#sent strong").inner_text()
    # The engine may still be working on it: reload the list a few times rather than wait blindly.
    deadline = time.monotonic() + WAIT_MS / 1000
    row = page.locator("table.payments tbody tr", has_text=trans_id)
    while True:
        page.goto(f"{live_server.url}/payments/transactions/?trans_id={trans_id}")
        if row.count() and "Processed" in row.inner_text():
            break
        assert time.monotonic() < deadline, f"{trans_id} was not processed in time"
        page.wait_for_timeout(300)

    page.click(f"text={trans_id}")
    expect(page.locator("#tx-status")).to_have_text("Processed")
    expect(page.locator("#allocations")).to_contain_text("LOAN-000101")
    assert outstanding(loan) == D("3500.00")
    screenshot(page, "transaction.png")


def test_reprocess_a_failed_payment(page, live_server, emulator, loan):
    stored_payment(
        emulator,
        "QFAILED001",
        bill_reference="LOAN-000101",
        status=MpesaTransaction.Status.FAILED,
        attempts=1,
        last_error="OperationalError: database is locked",
    )
    page.goto(f"{live_server.url}/payments/transactions/QFAILED001/")
    expect(page.locator("#tx-status")).to_have_text("Failed")

    # Reprocessing posts money: without the confirmation the browser does not even send the form.
    assert posts_while(page, lambda: page.click("#reprocess-form button[type=submit]")) == []
    assert page.evaluate("document.querySelector('#id_reprocess-confirm').validity.valueMissing")
    expect(page.locator("#tx-status")).to_have_text("Failed")
    page.check("#id_reprocess-confirm")
    page.click("#reprocess-form button[type=submit]")

    expect(page.locator(".message.success")).to_have_text("QFAILED001 reprocessed: processed.")
    expect(page.locator("#tx-status")).to_have_text("Processed")
    assert outstanding(loan) == D("4000.00")


def test_assign_an_unmatched_payment_to_a_loan(page, live_server, emulator, loan):
    stored_payment(
        emulator,
        "QUNMATCH01",
        amount=D("700.00"),
        bill_reference="rent",
        status=MpesaTransaction.Status.UNMATCHED,
    )
    page.goto(f"{live_server.url}/payments/transactions/QUNMATCH01/")
    page.fill("#id_assign-loan_number", "LOAN-000101")
    page.fill("#id_assign-reason", "payer called the branch")

    # Without the confirmation the browser itself refuses to submit (a required checkbox, no JS):
    # no request leaves the page, and the checkbox is what the browser complains about.
    assert posts_while(page, lambda: page.click("#assign-form button[type=submit]")) == []
    assert page.evaluate("document.querySelector('#id_assign-confirm').validity.valueMissing")
    expect(page.locator(".messages")).to_have_count(0)
    expect(page.locator("#tx-status")).to_have_text("Unmatched")
    page.check("#id_assign-confirm")
    page.click("#assign-form button[type=submit]")

    expect(page.locator(".message.success")).to_have_text("QUNMATCH01 assigned to LOAN-000101: processed.")
    expect(page.locator("#tx-status")).to_have_text("Processed")
    expect(page.locator("#allocations tbody tr").first).to_contain_text("4,300.00")
    assert outstanding(loan) == D("4300.00")


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone-360", "desktop-1280"])
def test_dashboard_and_list_show_what_matters_without_scrolling_sideways(
    open_tab, live_server, emulator, viewport
):
    today = timezone.localdate()
    borrower = BorrowerFactory(full_name="Wanjiru Kamau Njeri-Otieno", phones=["+254722000000"])
    LoanFactory(borrower=borrower, loan_number="LOAN-000101", principal_disbursed=D("900000.00"))
    for days_ago in range(0, 30, 3):
        trans_id = f"QWIDE{days_ago:05d}"
        noon = datetime.datetime.combine(
            today - datetime.timedelta(days=days_ago), datetime.time(12), NAIROBI
        )
        # Large amounts and long names: the widest figures the tables will hold.
        stored_payment(
            emulator, trans_id, trans_time=noon, amount=D("125000.00"), bill_reference="LOAN-000101"
        )
        transaction_process(trans_id=trans_id)
    stored_payment(
        emulator, "QWIDEUNM01", bill_reference="rent for march", status=MpesaTransaction.Status.UNMATCHED
    )
    page = open_tab(viewport)
    page.reload()
    width = viewport["width"]

    # The page itself never scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    # Every period's figures are on screen: stacked on a phone, side by side on a desktop.
    assert off_screen(page, "table.periods td, table.periods th[scope=row]") == []
    expect(page.locator("#last_30_days-amount")).to_have_text("1,250,000.00")
    # The chart fits its box (no sideways scrolling), with its legend and both axes on screen.
    chart_box = page.locator("figure.chart-box")
    assert chart_box.evaluate("(box) => box.scrollWidth <= box.clientWidth")
    assert off_screen(page, "svg.chart, svg.chart text.chart-axis, .chart-legend li") == []
    expect(page.locator(".chart-legend")).to_contain_text("Amount per day (KES, left axis)")
    # Labels stay readable at phone size (the drawing is scaled down there).
    label_height = page.locator("svg.chart text.chart-axis").first.evaluate(
        "(text) => text.getBoundingClientRect().height"
    )
    assert label_height >= 10, label_height
    # In the most recent payments, receipt, amount and status come first and are on screen.
    first_cells = "table.payments tbody td:nth-child(-n+3)"
    assert off_screen(page, first_cells) == []
    screenshot(page, f"dashboard-{width}.png")

    page.goto(f"{live_server.url}/payments/transactions/")
    assert page.locator("table.payments thead th").all_inner_texts()[:3] == [
        "Receipt",
        "Amount (KES)",
        "Status",
    ]
    assert off_screen(page, first_cells) == []
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, f"transactions-{width}.png")

    page.goto(f"{live_server.url}/payments/transactions/QWIDEUNM01/")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert off_screen(page, "#reprocess-form, #assign-form, #attempts") == []
    screenshot(page, f"transaction-{width}.png")

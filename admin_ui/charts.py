"""The dashboard's chart, drawn on the server as inline SVG: daily amounts as bars, daily counts as a
line with dots. No JavaScript: every bar and dot carries a ``<title>``, which browsers show on hover
(and screen readers read), so the exact figures are one pointer away on any device.

The SVG scales to its box's width (``viewBox``), so nothing scrolls sideways and both axes stay on
screen; the stylesheet sets the labels' size per screen width so they stay readable on a phone. The
legend is HTML beside it (``daily_volume_legend``), where it can wrap.
"""

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from core.money import format_kes

# On a 360 px phone the drawing is shown about 320 px wide (half size), so the stylesheet gives the
# labels up to 20 units there: the margins leave room for labels that large.
WIDTH, HEIGHT = 600, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 48, 16, 32
PLOT_WIDTH = WIDTH - LEFT - RIGHT
PLOT_HEIGHT = HEIGHT - TOP - BOTTOM
BAR_COLOUR = "#5b9bd5"
LINE_COLOUR = "#c0392b"
X_LABEL_EVERY = 7


def nice_ceiling(value: Decimal | int) -> Decimal:
    """The smallest of 1, 2 or 5 times a power of ten that is at least ``value``: an axis maximum
    people can read. ``1`` for zero or less, so an empty chart still has a scale."""
    value = Decimal(value)
    if value <= 0:
        return Decimal(1)
    base = Decimal(10) ** value.adjusted()
    return next(base * step for step in (1, 2, 5, 10) if value <= base * step)


def compact_amount(amount: Decimal) -> str:
    """``250000`` -> ``"250k"``, ``1500000`` -> ``"1.5M"``: short enough for an axis label."""
    for size, suffix in ((Decimal(1_000_000), "M"), (Decimal(1_000), "k")):
        if amount >= size:
            return f"{(amount / size).normalize():f}{suffix}"
    return f"{amount.normalize():f}"


def _px(value: float) -> str:
    # Formatted here: format_html escapes its arguments into strings before applying format specs.
    return f"{value:.1f}"


def _day_label(day: datetime.date) -> str:
    return f"{day.day} {day:%b}"


def _describe(row: dict) -> str:
    count = row["count"]
    return (
        f"{row['date']:%a %d %b %Y}: {count} payment{'' if count == 1 else 's'}, {format_kes(row['amount'])}"
    )


@dataclass(frozen=True, slots=True)
class _Scale:
    """Where a day and a value sit on the drawing: ``days`` slots across, two vertical axes."""

    days: int
    top_amount: Decimal
    top_count: Decimal

    @property
    def slot(self) -> float:
        return PLOT_WIDTH / (self.days or 1)

    @property
    def baseline(self) -> int:
        return TOP + PLOT_HEIGHT

    def x(self, index: int) -> float:
        """The middle of day ``index``'s slot."""
        return LEFT + index * self.slot + self.slot / 2

    def amount_y(self, amount: Decimal) -> float:
        # Pixels, not money: a float is fine once the amount has been scaled.
        return self.baseline - float(amount / self.top_amount) * PLOT_HEIGHT

    def count_y(self, count: int | Decimal) -> float:
        return self.baseline - float(Decimal(count) / self.top_count) * PLOT_HEIGHT


def _axes(scale: _Scale) -> SafeString:
    """Grid lines with amount labels on the left, count labels on the right."""
    amount_levels = (
        (Decimal(0), "0"),
        (scale.top_amount / 2, compact_amount(scale.top_amount / 2)),
        (scale.top_amount, compact_amount(scale.top_amount)),
    )
    grid = format_html_join(
        "",
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#ddd"/>'
        '<text x="{}" y="{}" text-anchor="end" dominant-baseline="middle" class="chart-axis">{}</text>',
        (
            (LEFT, _px(y), WIDTH - RIGHT, _px(y), LEFT - 6, _px(y), label)
            for y, label in ((scale.amount_y(level), label) for level, label in amount_levels)
        ),
    )
    count_labels = format_html_join(
        "",
        '<text x="{}" y="{}" dominant-baseline="middle" class="chart-axis">{}</text>',
        (
            (WIDTH - RIGHT + 6, _px(scale.count_y(level)), compact_amount(level))
            for level in (Decimal(0), scale.top_count)
        ),
    )
    return format_html("{}{}", grid, count_labels)


def _amount_bars(daily: list[dict], scale: _Scale) -> SafeString:
    return format_html_join(
        "",
        '<rect class="chart-bar" x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>',
        (
            (
                _px(LEFT + index * scale.slot + scale.slot * 0.15),
                _px(scale.amount_y(row["amount"])),
                _px(scale.slot * 0.7),
                _px(scale.baseline - scale.amount_y(row["amount"])),
                BAR_COLOUR,
                _describe(row),
            )
            for index, row in enumerate(daily)
        ),
    )


def _count_line(daily: list[dict], scale: _Scale) -> SafeString:
    """The daily counts as a line, with a dot (and its figures on hover) per day."""
    points = [(scale.x(index), scale.count_y(row["count"])) for index, row in enumerate(daily)]
    line = format_html(
        '<polyline class="chart-line" points="{}" fill="none" stroke="{}" stroke-width="2"/>',
        " ".join(f"{x:.1f},{y:.1f}" for x, y in points),
        LINE_COLOUR,
    )
    dots = format_html_join(
        "",
        '<circle class="chart-dot" cx="{}" cy="{}" r="3.5" fill="{}"><title>{}</title></circle>',
        ((_px(x), _px(y), LINE_COLOUR, _describe(row)) for (x, y), row in zip(points, daily, strict=True)),
    )
    return format_html("{}{}", line, dots)


def _day_labels(daily: list[dict], scale: _Scale) -> SafeString:
    return format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="middle" class="chart-axis">{}</text>',
        (
            (_px(scale.x(index)), scale.baseline + 22, _day_label(row["date"]))
            for index, row in enumerate(daily)
            # Counted back from the last day, so today always has its label.
            if (len(daily) - 1 - index) % X_LABEL_EVERY == 0
        ),
    )


def _empty_note(daily: list[dict]) -> SafeString | str:
    if any(row["count"] for row in daily):
        return ""
    return format_html(
        '<text x="{}" y="{}" text-anchor="middle" class="chart-empty">No payments in these days</text>',
        LEFT + PLOT_WIDTH // 2,
        TOP + PLOT_HEIGHT // 2,
    )


def daily_volume_svg(daily: list[dict]) -> SafeString:
    """An SVG of ``daily`` (``payment_stats()["daily"]``: ``{"date", "count", "amount"}`` oldest
    first): a bar per day for the amount (left axis, KES) and a line with a dot per day for the
    count (right axis). Scales stretch to the data; the SVG scales to its container's width."""
    scale = _Scale(
        days=len(daily),
        top_amount=nice_ceiling(max((row["amount"] for row in daily), default=Decimal(0))),
        top_count=nice_ceiling(max((row["count"] for row in daily), default=0)),
    )
    title = f"Payments per day, {daily[0]['date']} to {daily[-1]['date']}" if daily else "Payments per day"
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-labelledby="daily-chart-title" '
        'xmlns="http://www.w3.org/2000/svg" font-size="13">'
        '<title id="daily-chart-title">{}</title>{}{}{}{}{}'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#888"/></svg>',
        WIDTH,
        HEIGHT,
        title,
        _axes(scale),
        _amount_bars(daily, scale),
        _count_line(daily, scale),
        _day_labels(daily, scale),
        _empty_note(daily),
        LEFT,
        scale.baseline,
        WIDTH - RIGHT,
        scale.baseline,
    )


def daily_volume_legend() -> SafeString:
    """The chart's legend as an HTML list, each entry with a swatch drawn in the chart's colours."""
    return format_html(
        '<ul class="chart-legend">'
        '<li><svg width="14" height="14" aria-hidden="true"><rect width="14" height="14" fill="{}"/></svg>'
        "Amount per day (KES, left axis)</li>"
        '<li><svg width="22" height="14" aria-hidden="true"><line x1="0" y1="7" x2="22" y2="7" stroke="{}" '
        'stroke-width="2"/><circle cx="11" cy="7" r="3.5" fill="{}"/></svg>'
        "Payments per day (count, right axis)</li></ul>",
        BAR_COLOUR,
        LINE_COLOUR,
        LINE_COLOUR,
    )

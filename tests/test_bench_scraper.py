"""The arithmetic of bench/scraper.py: acknowledgements per window, compared with their neighbours."""

import pytest

from bench.scraper import counter_total, window_changes


def acks(rate: float, start: float, end: float) -> list[float]:
    count = round(rate * (end - start))
    return [start + (index + 0.5) / rate for index in range(count)]


def test_each_scraped_window_is_compared_with_the_two_around_it():
    # 100 acks/s without scraping, 90 with; acknowledgements come from 0 to 9 s, and the first and
    # last second of them are left out, so the windows from 2 to 7 s count: two scraped ones, each
    # between two without.
    windows = [(float(n), float(n + 1), n % 2 == 1) for n in range(9)]
    times = []
    for start, end, scraped in windows:
        times += acks(90 if scraped else 100, start, end)
    changes = window_changes(windows, times)
    assert [round(c["change"], 3) for c in changes] == [-0.1, -0.1]
    assert all(c["without"] == 100 and c["with"] == 90 for c in changes)


def test_a_steady_drift_cancels_between_neighbours():
    # The machine slows steadily (120 acks/s down to 80) and scraping costs nothing: each scraped
    # window sits halfway between its neighbours.
    windows = [(float(n), float(n + 1), n % 2 == 1) for n in range(9)]
    times = []
    for start, end, _ in windows:
        times += acks(120 - 5 * start, start, end)
    assert [round(c["change"], 3) for c in window_changes(windows, times)] == [0.0, 0.0]


def test_no_acknowledgement_no_window():
    assert window_changes([(0.0, 1.0, False), (1.0, 2.0, True), (2.0, 3.0, False)], []) == []


def test_counter_total_sums_the_label_values_asked_for():
    text = (
        "# TYPE haven_callbacks counter\n"
        'haven_callbacks_total{kind="confirmation",outcome="accepted"} 7.0\n'
        'haven_callbacks_total{kind="confirmation",outcome="malformed"} 2.0\n'
        'haven_callbacks_total{kind="validation",outcome="accepted"} 5.0\n'
    )
    assert counter_total(text, "haven_callbacks_total", kind="confirmation", outcome="accepted") == 7
    assert counter_total(text, "haven_callbacks_total", outcome="accepted") == 12
    assert counter_total(text, "haven_callbacks_total") == pytest.approx(14)

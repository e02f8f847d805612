"""Scraping /metrics during a load, for ``bench/payments.py --scrape``: what Prometheus does to the server.

``Scraper`` runs in a thread of the bench process (Prometheus is another process on the machine, as
here) until stopped. Time is cut into windows of ``window`` seconds, alternately without and with
scraping; in a window with scraping it GETs /metrics every ``every`` seconds. It keeps the windows
(epoch start, end, scraped or not) and each scrape's latency and status, so that acknowledgements
counted per window compare the two states seconds apart, under the same background load.
``counter_total`` reads one counter from a scrape, summed over the label values asked for, to check
that the figures add up across gunicorn's workers (multiprocess mode).
"""

from __future__ import annotations

import bisect
import threading
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families


class Scraper:
    def __init__(self, url: str, token: str, *, window: float = 2.0, every: float = 1.0) -> None:
        self.url, self.window, self.every = url, window, every
        self.headers = {"Authorization": f"Bearer {token}"}
        self.windows: list[tuple[float, float, bool]] = []  # (start, end, scraped), epoch seconds
        self.latencies_ms: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-scraper", daemon=True)

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _wait_until(self, moment: float) -> bool:
        """Sleep until ``moment`` (epoch); False when stopped meanwhile."""
        return not self._stop.wait(max(0.0, moment - time.time()))

    def _run(self) -> None:
        origin = time.time()
        number = 0
        with httpx.Client(timeout=5.0) as client:
            while not self._stop.is_set():
                start = origin + number * self.window
                scraped = number % 2 == 1  # windows without scraping first, then alternately
                self.windows.append((start, start + self.window, scraped))
                if scraped:
                    ticks = max(1, round(self.window / self.every))
                    for tick in range(ticks):
                        if not self._wait_until(start + tick * self.every):
                            return
                        self._scrape(client)
                if not self._wait_until(start + self.window):
                    return
                number += 1

    def _scrape(self, client: httpx.Client) -> None:
        started = time.perf_counter()
        try:
            response = client.get(self.url, headers=self.headers)
            ok = response.status_code == 200 and b"haven_callbacks_total" in response.content
        except httpx.HTTPError:
            ok = False
        self.latencies_ms.append((time.perf_counter() - started) * 1000)
        self.errors += not ok


def window_changes(windows: list[tuple[float, float, bool]], acknowledged_at: list[float]) -> list[dict]:
    """Acknowledgements per second in each window with scraping against the mean of the two windows
    without around it (a drift over those seconds cancels), for the windows the load covered from
    end to end (its first and last second left out: ramp-up and the tail)."""
    if not acknowledged_at:
        return []
    first, last = acknowledged_at[0] + 1.0, acknowledged_at[-1] - 1.0
    covered = [w for w in windows if w[0] >= first and w[1] <= last]

    def rate(window: tuple[float, float, bool]) -> float:
        start, end, _ = window
        return (bisect.bisect_left(acknowledged_at, end) - bisect.bisect_left(acknowledged_at, start)) / (
            end - start
        )

    changes = []
    for before, during, after in zip(covered, covered[1:], covered[2:], strict=False):
        if during[2] and not before[2] and not after[2]:
            without = (rate(before) + rate(after)) / 2
            changes.append({"with": rate(during), "without": without, "change": rate(during) / without - 1})
    return changes


def scrape_text(url: str, token: str) -> str:
    response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10.0)
    response.raise_for_status()
    return response.text


def counter_total(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of counter ``name`` (``..._total``) whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and wanted <= set(sample.labels.items())
    )

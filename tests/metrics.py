"""Reading /metrics in tests: the exposition parsed by prometheus_client's own parser."""

from prometheus_client.parser import text_string_to_metric_families

TOKEN = "metrics-token-for-tests-0123456789"


def scrape_text(client, token: str = TOKEN) -> str:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample: ``(name, frozenset(labels.items())) -> value``."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client, token: str = TOKEN) -> dict[tuple[str, frozenset], float]:
    return samples(scrape_text(client, token))


def value(scraped: dict, name: str, **labels: str) -> float:
    """The value of one sample (0 when it is not there: a series that never moved)."""
    return scraped.get((name, frozenset(labels.items())), 0.0)

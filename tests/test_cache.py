"""The test run's cache: its own key prefix, and clearing it leaves everyone else's keys alone."""

import pytest
from django.conf import settings
from django.core.cache import cache

from tests.cache import clear_test_cache


def test_the_run_uses_its_own_key_prefix():
    assert settings.CACHES["default"]["KEY_PREFIX"] == "haven-test"
    assert cache.make_key("doorbell").startswith("haven-test:")


@pytest.mark.skipif(
    not settings.REDIS_URL,
    reason="needs Redis (REDIS_URL); without it the cache is a table of the test database",
)
def test_clearing_the_test_cache_leaves_other_keys_of_the_redis_database(django_db_blocker):
    import redis

    other = redis.Redis.from_url(settings.REDIS_URL)
    other.set("someone-else:session", "theirs", ex=60)
    cache.set("ours", 1, timeout=60)
    try:
        clear_test_cache(django_db_blocker)

        assert cache.get("ours") is None
        assert other.get("someone-else:session") == b"theirs"
    finally:
        other.delete("someone-else:session")

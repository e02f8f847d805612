"""The test run's own cache keys.

Tests run with ``CACHE_KEY_PREFIX=haven-test`` (tests/settings.py). On Redis, ``clear_test_cache``
deletes only the keys with that prefix, never the rest of the database ``REDIS_URL`` names; without
Redis the cache is a table of the test database, which belongs to the run."""

from django.core.cache import cache


def clear_test_cache(django_db_blocker) -> None:
    """Delete the run's cache keys; takes pytest-django's ``django_db_blocker`` fixture, because the
    database cache needs the database even in a fixture of a test that does not."""
    delete_pattern = getattr(cache, "delete_pattern", None)  # django-redis: prefix and version applied
    if delete_pattern is not None:
        delete_pattern("*")
        return
    with django_db_blocker.unblock():
        cache.clear()

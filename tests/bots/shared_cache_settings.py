"""Settings for the limiter's two-process test: the project's, with a cache every process shares.
Redis when ``REDIS_URL`` is set (under a prefix of this run's own), else Django's database cache in
the SQLite file ``LIMITER_DB`` names."""

import os

from config.settings import *  # noqa: F403
from config.settings import REDIS_URL

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ["LIMITER_PREFIX"],
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ["LIMITER_DB"],
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    }
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "limiter_cache"}
    }

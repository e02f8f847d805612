"""Health checks. ``/healthz`` (liveness) asks only that the process and its database connection
answer; ``/readyz`` (readiness: may this process be sent traffic?) asks every service it needs."""

import logging

import redis
from django.conf import settings
from django.db import Error as DatabaseError
from django.db import connection

logger = logging.getLogger(__name__)

# A readiness probe must answer before the load balancer's own timeout, whatever the services do.
READY_TIMEOUT_S = 2.0


def readiness() -> dict[str, bool]:
    """Whether each service this process needs answers now: ``database`` always, ``redis`` when
    ``REDIS_URL`` is set (cache and broker). Errors are logged here, not returned: they can name
    hosts and users."""
    checks = {"database": _database_answers()}
    if settings.REDIS_URL:
        checks["redis"] = _redis_answers(settings.REDIS_URL)
    return checks


def _database_answers() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        logger.warning("readiness: the database does not answer", exc_info=True)
        return False
    return True


def _redis_answers(url: str) -> bool:
    # A client of its own, with short timeouts: the cache's would wait as long as the cache does.
    client = redis.Redis.from_url(url, socket_connect_timeout=READY_TIMEOUT_S, socket_timeout=READY_TIMEOUT_S)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        logger.warning("readiness: Redis does not answer", exc_info=True)
        return False
    finally:
        client.close()

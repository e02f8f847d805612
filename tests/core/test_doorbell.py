"""The doorbell while Redis is down, and workers that drain what waits when they connect."""

import json
import logging

import pytest
from django_redis.exceptions import ConnectionInterrupted
from kombu.exceptions import OperationalError

from config.celery import DrainOnConnect
from config.celery import app as celery_app
from core import doorbell


class Drain:
    def __init__(self, error: Exception | None = None) -> None:
        self.error, self.sent = error, 0

    def delay(self) -> None:
        if self.error is not None:
            raise self.error
        self.sent += 1


@pytest.fixture
def named(monkeypatch):
    """Register a fake drain task under a name of its own: the doorbell rings tasks by name."""

    def register(drain: Drain) -> str:
        name = f"tests.drain.{id(drain)}"
        monkeypatch.setitem(celery_app.tasks, name, drain)
        return name

    return register


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(doorbell.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(doorbell, "_outage", doorbell._Outage())
    return now


@pytest.fixture
def cache_down(monkeypatch):
    def unreachable(*args, **kwargs):
        raise ConnectionInterrupted(connection=None)

    monkeypatch.setattr(doorbell.cache, "add", unreachable)


def test_an_outage_is_logged_once_a_minute_with_a_count_not_a_traceback_per_ring(
    db, clock, cache_down, caplog, named
):
    caplog.set_level(logging.WARNING, logger="core.doorbell")
    for _ in range(5):
        assert doorbell.ring("test:bell", named(Drain()), force=True) is False
        clock[0] += 10
    assert len(caplog.records) == 1
    assert "unreachable, 1 ring(s) missed in this process" in caplog.records[0].getMessage()

    clock[0] += 15  # 65 s after the first warning
    doorbell.ring("test:bell", named(Drain()), force=True)

    assert len(caplog.records) == 2
    assert "5 ring(s) missed in this process in the last 60 s" in caplog.records[1].getMessage()
    assert all(record.exc_info is None for record in caplog.records)


def test_a_broker_outage_is_counted_too_and_recovery_is_logged(db, clock, caplog, named):
    caplog.set_level(logging.WARNING, logger="core.doorbell")
    assert (
        doorbell.ring("test:bell", named(Drain(OperationalError("Connection refused"))), force=True) is False
    )
    drain = Drain()

    assert doorbell.ring("test:bell", named(drain), force=True) is True

    assert drain.sent == 1
    first, second = (record.getMessage() for record in caplog.records)
    assert first.startswith("doorbell test:bell: Redis (cache or broker) unreachable, 1 ring(s) missed")
    assert "(OperationalError: Connection refused)" in first
    assert (
        second == "doorbell test:bell: Redis reachable again (0 more ring(s) missed since the last warning)"
    )


def test_a_worker_rings_both_doorbells_each_time_it_connects_to_the_broker(monkeypatch):
    from core.services import outbox
    from payments.services import doorbell as payments_doorbell

    rung = []
    monkeypatch.setattr(
        payments_doorbell, "ring_doorbell", lambda force=False: rung.append(("payments", force))
    )
    monkeypatch.setattr(outbox, "outbox_ring", lambda force=False: rung.append(("outbox", force)))

    # A step of the consumer blueprint: Celery starts it on connecting and again on reconnecting.
    assert DrainOnConnect in celery_app.steps["consumer"]
    DrainOnConnect(parent=None).start(consumer=None)

    assert rung == [("payments", True), ("outbox", True)]


def test_the_bell_is_set_once_until_rearmed_or_expired_on_the_configured_cache(db, monkeypatch):
    # The doorbell relies on cache.add being "set if absent", on the database cache too.
    from django.core.cache import cache

    cache.delete("test:add-bell")
    assert cache.add("test:add-bell", 1, timeout=doorbell.TTL) is True
    assert cache.add("test:add-bell", 1, timeout=doorbell.TTL) is False
    doorbell.rearm("test:add-bell")
    assert cache.add("test:add-bell", 1, timeout=1) is True
    cache.set("test:add-bell", 1, timeout=-1)  # expired
    assert cache.add("test:add-bell", 1, timeout=doorbell.TTL) is True
    cache.delete("test:add-bell")


def test_a_process_that_never_imported_the_tasks_rings_them_by_name():
    # A web process rings before anything imported the task modules (Celery discovers them lazily,
    # when a worker starts): the doorbell finds the drain by name all the same.
    from tests.test_settings import DEVELOPMENT, run

    script = (
        "import sys, django; django.setup(); "
        "from core.doorbell import task_named; "
        "before = 'core.tasks' in sys.modules or 'payments.tasks' in sys.modules; "
        "print(before, task_named('core.outbox_drain').name, task_named('payments.drain_received').name)"
    )
    result = run(["-c", script], **DEVELOPMENT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "core.outbox_drain", "payments.drain_received"]


# A fresh process (``web``: gunicorn's config.wsgi; ``command``: django.setup() as manage.py does) rings
# a real bell: the cache is local memory and the task is published to the in-memory broker. It
# reports how often Django was set up and checked during the ring, whether logging kept its handlers,
# and which task modules the ring had to import.
RING_IN_A_FRESH_PROCESS = """
import json, logging, sys
from unittest import mock
import django, django.core.checks
if sys.argv[1] == "web":
    import config.wsgi
else:
    django.setup()
from django.test.utils import override_settings
from core.doorbell import ring

calls = {"setup": 0, "checks": 0}
def counted(name, real):
    def call(*args, **kwargs):
        calls[name] += 1
        return real(*args, **kwargs)
    return call

handlers = list(logging.getLogger().handlers)
modules = set(sys.modules)
with (
    mock.patch("django.setup", counted("setup", django.setup)),
    mock.patch("django.core.checks.run_checks", counted("checks", django.core.checks.run_checks)),
    override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}),
):
    rang = ring("test:bell", "payments.drain_received")
print(json.dumps({
    "rang": rang, **calls, "same_logging": logging.getLogger().handlers == handlers,
    "imported_tasks": sorted(m for m in set(sys.modules) - modules if m.endswith(".tasks")),
}))
"""


@pytest.mark.parametrize(
    ("process", "imported_tasks"),
    [("web", []), ("command", ["bots.tasks", "core.tasks", "payments.tasks"])],
)
def test_a_ring_in_a_fresh_process_neither_sets_django_up_again_nor_reconfigures_logging(
    process, imported_tasks
):
    # Celery's worker start-up (loader.import_default_modules) used to be the way a first ring found its
    # task: Celery's Django fixup then ran django.setup() again, which configured logging a second time,
    # and every system check, inside the first confirmation of each gunicorn worker. A web process
    # registers the tasks at start-up; another process imports them at its first ring, and only that.
    from tests.test_settings import DEVELOPMENT, run

    result = run(["-c", RING_IN_A_FRESH_PROCESS, process], **DEVELOPMENT, CELERY_TASK_ALWAYS_EAGER="false")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "rang": True,
        "setup": 0,
        "checks": 0,
        "same_logging": True,
        "imported_tasks": imported_tasks,
    }

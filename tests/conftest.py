import pytest
from django.db import connection

from config.celery import app as celery_app
from core import doorbell
from core.actors import Actor
from tests.factories import AdminFactory, OfficerFactory


def pytest_collection_modifyitems(config, items):
    # Money and concurrency tests need real row locks; SQLite ignores select_for_update.
    if connection.vendor == "postgresql":
        return
    for item in items:
        marker = item.get_closest_marker("postgres")
        if marker is not None:
            why = marker.args[0] if marker.args else "select_for_update is a no-op on SQLite"
            item.add_marker(pytest.mark.skip(reason=f"needs PostgreSQL ({why}): set DATABASE_URL to run it"))


@pytest.fixture(autouse=True, scope="session")
def celery_runs_tasks_in_process():
    # Tests run tasks in-process whatever the environment says (CI sets REDIS_URL, which would
    # otherwise send them to a broker with no worker). Tests that need a real worker start one.
    celery_app.conf.task_always_eager = True
    yield


@pytest.fixture(autouse=True)
def _doorbell_rings_every_time(settings):
    # Tasks run in-process here, where a debounced drain would wait inside the request (settings.py
    # makes the same choice when CELERY_TASK_ALWAYS_EAGER is set). Tests of the debounce set it.
    settings.PAYMENTS_DOORBELL_DEBOUNCE = 0.0
    settings.OUTBOX_DOORBELL_DEBOUNCE = 0.0
    doorbell._last_asked.clear()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # The factories set real passwords; PBKDF2 at full strength costs ~0.4 s per staff user.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def system_actor() -> Actor:
    return Actor.system("tests")


@pytest.fixture
def officer(db):
    return OfficerFactory()


@pytest.fixture
def admin_user(db):
    return AdminFactory()

import pytest
from django.db import connection

from config.celery import app as celery_app
from core.actors import Actor
from tests.factories import AdminFactory, OfficerFactory


def pytest_collection_modifyitems(config, items):
    # Money and concurrency tests need real row locks; SQLite ignores select_for_update.
    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(
        reason="needs PostgreSQL (select_for_update is a no-op on SQLite): set DATABASE_URL to run it"
    )
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def celery_runs_tasks_in_process():
    # Tests run tasks in-process whatever the environment says (CI sets REDIS_URL, which would
    # otherwise send them to a broker with no worker). Tests that need a real worker start one.
    celery_app.conf.task_always_eager = True
    yield


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

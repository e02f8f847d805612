"""Celery application.

Without ``REDIS_URL`` the settings make every task run eagerly in the calling process, so the
embedded default needs no broker. With it, Redis is the broker and ``celery -A config worker``
runs the tasks.
"""

import os

from celery import Celery
from celery.signals import task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("haven")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def _drop_broken_connections(task=None, **kwargs) -> None:
    # Workers reuse database connections across tasks (CELERY_DB_REUSE_MAX); like a web request,
    # each task first drops a connection that broke or outlived DB_CONN_MAX_AGE. A task run eagerly
    # shares its caller's connection (and maybe its transaction): leave that one alone.
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()

"""Celery application.

Without ``REDIS_URL`` the settings make every task run eagerly in the calling process, so the
embedded default needs no broker. With it, Redis is the broker and ``celery -A config worker``
runs the tasks.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("haven")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

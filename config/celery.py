"""Celery application.

Without ``REDIS_URL`` the settings make every task run eagerly in the calling process, so the
embedded default needs no broker. With it, Redis is the broker and ``celery -A config worker``
runs the tasks.
"""

import os

from celery import Celery, bootsteps
from celery.signals import beat_init, celeryd_init, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("haven")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


NO_BROKER = (
    "there is no broker: without REDIS_URL (or CELERY_BROKER_URL) tasks run inside the web process and a "
    "worker or beat would wait on an in-memory queue that nothing else can reach. Set REDIS_URL to run {what}."
)


@celeryd_init.connect
def _refuse_a_worker_without_a_broker(**kwargs) -> None:
    if app.conf.broker_url.startswith("memory://"):
        raise SystemExit("celery worker: " + NO_BROKER.format(what="a worker"))


@beat_init.connect
def _refuse_beat_without_a_broker(**kwargs) -> None:
    if app.conf.broker_url.startswith("memory://"):
        raise SystemExit("celery beat: " + NO_BROKER.format(what="beat"))


@task_prerun.connect
def _drop_broken_connections(task=None, **kwargs) -> None:
    # Workers reuse database connections across tasks (CELERY_DB_REUSE_MAX); like a web request,
    # each task first drops a connection that broke or outlived DB_CONN_MAX_AGE. A task run eagerly
    # shares its caller's connection (and maybe its transaction): leave that one alone.
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


class DrainOnConnect(bootsteps.StartStopStep):
    """Each time this worker's consumer connects to the broker (at start, and again after a broker
    outage: Celery restarts the consumer's steps), ring the payment and outbox doorbells. Payments
    stored while Redis was down rang no bell; without this they would wait for beat's sweeper, or,
    with no beat running, for the next confirmation's ring."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def start(self, consumer) -> None:
        from core.services.outbox import outbox_ring
        from payments.services.doorbell import ring_doorbell

        ring_doorbell(force=True)
        outbox_ring(force=True)


app.steps["consumer"].add(DrainOnConnect)

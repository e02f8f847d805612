import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()

from core.doorbell import tasks_discover  # noqa: E402  (needs the apps loaded above)

# Register the tasks now, at start-up: otherwise a worker's first ring would import them inside the
# first confirmation it serves.
tasks_discover()

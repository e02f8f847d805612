import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_asgi_application()

from core.doorbell import tasks_discover  # noqa: E402  (needs the apps loaded above)

# As config/wsgi.py: register the tasks at start-up, not inside the first request that rings.
tasks_discover()

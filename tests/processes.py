"""Environments for the processes tests start (manage.py, gunicorn, celery)."""

import os


def clean_environment(**env: str) -> dict[str, str]:
    """This process's environment without any of the project's settings, plus ``env``: a child
    configured only by what the test says (no .env file either)."""
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_", "CELERY_"))
    }
    return clean | {"DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_READ_ENV_FILE": "false", **env}

"""Environments for the processes tests start (manage.py, gunicorn, celery)."""

import os
import signal
import subprocess


def clean_environment(**env: str) -> dict[str, str]:
    """This process's environment without any of the project's settings, plus ``env``: a child
    configured only by what the test says (no .env file either)."""
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_", "CELERY_"))
    }
    return clean | {"DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_READ_ENV_FILE": "false", **env}


def stop_process_group(process: subprocess.Popen) -> None:
    """Stop a process started with ``start_new_session=True`` and everything it started: SIGTERM,
    then SIGKILL if it is still there after 20 seconds."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)

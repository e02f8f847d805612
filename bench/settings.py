"""Settings for the gunicorn of the M-Pesa load benchmark: the project's own, plus the bench-only URL
of ``bench/urls.py``. Everything else comes from the environment ``bench/payments.py`` sets."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"

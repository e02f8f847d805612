"""Settings for HAVEN GRAZURI Advance: one module, driven by the environment.

With no environment at all the project is production and refuses to start without its secrets;
``DJANGO_DEBUG=true`` asks for development, on the embedded default: a SQLite file, the cache in a
table of that database, Celery tasks executed eagerly and SMS printed to the console.
``DATABASE_URL`` switches to PostgreSQL, ``REDIS_URL`` to Redis (cache and Celery broker).
``.env.example`` lists every setting read here.
"""

import base64
import hashlib
import ipaddress
import os
import re
from decimal import Decimal
from pathlib import Path

import environ
from celery.schedules import crontab
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A .env file next to manage.py fills in what the real environment leaves unset (never overrides it).
if env.bool("DJANGO_READ_ENV_FILE", default=True) and (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

# Production unless development is asked for: a process started with no environment at all (a bare
# `gunicorn config.wsgi`) must not be a debug server with the Daraja emulator on, so DEBUG is off by
# default and, without its secrets, such a process refuses to start (below) rather than guess them.
# `make run`, `make test` (tests/settings.py) and .env.example's development section opt in.
DEBUG = env.bool("DJANGO_DEBUG", default=False)

# --- Secrets: defaults only for local development -----------------------------------------------
_missing = [
    name
    for name in ("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "FIELD_ENCRYPTION_KEYS")
    if not DEBUG and not env.str(name, default="").strip()
]
if _missing:
    raise ImproperlyConfigured(
        (
            "DJANGO_DEBUG is false"
            if "DJANGO_DEBUG" in env
            else "DJANGO_DEBUG is not set, so this runs as production"
        )
        + ", and these settings must be set in the environment: "
        + ", ".join(_missing)
        + ". For local development set DJANGO_DEBUG=true (make run and make test do)."
    )

SECRET_KEY = env.str(
    "DJANGO_SECRET_KEY", default="django-insecure-local-development-only-never-in-production"
)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])


def _dev_fernet_key(secret: str) -> str:
    # Local runs get a stable key derived from the (insecure) development SECRET_KEY.
    return base64.urlsafe_b64encode(hashlib.sha256(("fernet:" + secret).encode()).digest()).decode()


# Newest key first: encryption uses the first, decryption tries all (MultiFernet), so keys rotate.
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[_dev_fernet_key(SECRET_KEY)])
for _key in FIELD_ENCRYPTION_KEYS:
    try:
        Fernet(_key)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS holds a value that is not a Fernet key "
            "(make one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())')"
        ) from exc

# --- Applications ------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "core",
    "payments",
    # The Daraja emulator's ledger (its views are mounted only when MPESA_EMULATOR_ENABLED).
    "payments.emulator",
    "ussd",
    "bots",
    "admin_ui",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "core.middleware.CommonMiddleware",  # Django's, without redirecting a POST (it loses the body)
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

if not DEBUG:
    # gunicorn serves the collected static files itself (runserver does it in development).
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_USER_MODEL = "core.User"
LOGIN_URL = "admin:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Database -----------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # Writers queue for the lock instead of failing with "database is locked"; WAL lets readers
        # carry on while one request or eager task writes.
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The M-Pesa confirmation INSERT is a server-side prepared statement (core.db.execute_prepared).
# Turn it off behind a connection pooler in transaction mode, which moves sessions between clients.
DB_PREPARED_STATEMENTS = env.bool("DB_PREPARED_STATEMENTS", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and Celery ---------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# Prepended to every cache key, so that several users of one Redis database keep apart (the tests
# use their own prefix and clear only their own keys).
CACHE_KEY_PREFIX = env.str("CACHE_KEY_PREFIX", default="")
if REDIS_URL:
    # django-redis keeps one Redis client per process; Django's own backend builds a new client for
    # every call, which doubled the cost of the payment doorbell rung on every confirmation.
    CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": REDIS_URL}}
else:
    # Without Redis the cache is a table in the database, shared by every process (gunicorn workers,
    # manage.py commands): a per-process cache would keep emulator tokens, URL registrations and
    # sessions of the USSD menu in one worker only. core.apps creates the table after migrate.
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "haven_cache"}
    }
CACHES["default"]["KEY_PREFIX"] = CACHE_KEY_PREFIX

# In-process transport without Redis (tasks run eagerly); named with a host, or kombu warns "No
# hostname was supplied" whenever the connection is described, once per payment.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://localhost/")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = env.bool("CELERY_TASK_EAGER_PROPAGATES", default=False)
CELERY_TASK_IGNORE_RESULT = True
# A task is acknowledged only when it finishes, so a worker killed mid-task leaves it on the queue.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "Africa/Nairobi"
# Celery closes the database connection around every task by default; reuse it instead (a fresh
# PostgreSQL connection per payment costs more than processing the payment).
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
# Drain tasks started per doorbell ring: the number of worker processes that may post payments side
# by side (match it to the total worker concurrency when scaling out).
PAYMENTS_DRAINERS = env.int("PAYMENTS_DRAINERS", default=2)
# A web process that rang the payments doorbell less than this many seconds ago does not ring again
# (the Redis round trip was a fifth of a confirmation's cost); a drain looks for work until this long
# after it re-armed the bell, so nothing waits for the sweeper. 0 rings for every payment. Always 0
# when tasks run in-process (a drain would wait inside the request).
PAYMENTS_DOORBELL_DEBOUNCE = (
    0.0 if CELERY_TASK_ALWAYS_EAGER else env.float("PAYMENTS_DOORBELL_DEBOUNCE", default=0.5)
)
# The same for the outbox's doorbell, rung when a transaction that queued messages commits (a posted
# payment queues two or three).
OUTBOX_DOORBELL_DEBOUNCE = (
    0.0 if CELERY_TASK_ALWAYS_EAGER else env.float("OUTBOX_DOORBELL_DEBOUNCE", default=0.5)
)
CELERY_BEAT_SCHEDULE = {
    "sweep-received-payments": {"task": "payments.sweep_received", "schedule": 60.0},
    "sweep-outbox": {"task": "core.outbox_sweep", "schedule": 60.0},
    # The staff bot: updates stored but not handled, alerts resolved elsewhere, the 08:00 digest.
    "telegram-sweep": {"task": "bots.sweep", "schedule": 60.0},
    "telegram-daily-digest": {"task": "bots.daily_digest", "schedule": crontab(hour=8, minute=0)},
    "ops-alerts": {"task": "payments.ops_check", "schedule": 60.0},
}
# Pull Transactions (payments.services.pull): how often, and how far back each pull looks (Daraja keeps
# 48 hours). Overlapping windows are harmless: a payment already stored is only counted as known.
MPESA_PULL_INTERVAL_MINUTES = env.int("MPESA_PULL_INTERVAL_MINUTES", default=15)
MPESA_PULL_HOURS = env.float("MPESA_PULL_HOURS", default=2.0)
if MPESA_PULL_INTERVAL_MINUTES > 0:
    CELERY_BEAT_SCHEDULE["pull-transactions"] = {
        "task": "payments.pull_transactions",
        "schedule": MPESA_PULL_INTERVAL_MINUTES * 60.0,
    }

# Channels deliver what the engine records in the outbox (core.services.outbox).
OUTBOX_SENDERS = {"sms": "ussd.senders.send_sms"}

# Counts other apps add to the staff dashboard (label: dotted path of a function returning an int),
# so admin_ui shows them without importing another channel.
DASHBOARD_COUNTS = {"failed USSD sessions today": "ussd.selectors.failed_sessions_today"}

# Proxies whose X-Forwarded-For is believed (the load balancer in front of gunicorn).
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])

# --- Operations: /metrics (Prometheus) ------------------------------------------------------------
# /metrics answers 404 unless one of these is set; when both are, both must be satisfied.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])  # addresses or networks (CIDR)
if METRICS_TOKEN and len(METRICS_TOKEN) < 24:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 24 characters (or empty)")
for _network in METRICS_ALLOWED_IPS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as exc:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_IPS: {_network!r} is not an address or network") from exc
# Read by prometheus_client itself, from the environment, when a process starts: the directory where
# every gunicorn and Celery process writes its counts (core.metrics). gunicorn.conf.py and
# config/metrics_dir.py set it and create it for the processes deploy/Procfile starts. Checked here so
# that a typo fails at start-up instead of at the first payment.
_multiproc_dir = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
if not _multiproc_dir:
    # Set but empty (the line of .env.example, read from .env above) would still switch
    # prometheus_client to multiprocess mode, writing its files to the working directory.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
elif not Path(_multiproc_dir).is_dir():
    raise ImproperlyConfigured(
        f"PROMETHEUS_MULTIPROC_DIR={_multiproc_dir} is not a directory (gunicorn and "
        "`python -m config.metrics_dir` create it as they start; create it before running other commands)"
    )

# --- Operations: alerts to admins (payments.services.monitoring, every minute from Celery beat) ----
# No confirmation for this many minutes on an active paybill, during ALERT_HOURS (Nairobi), when it
# received payments in the same hour on one of the previous 7 days.
ALERT_SILENCE_MINUTES = env.int("ALERT_SILENCE_MINUTES", default=60)
ALERT_HOURS = env.str("ALERT_HOURS", default="07:00-21:00")
# Failed + unmatched above this fraction of at least 20 payments in the last 30 minutes.
ALERT_FAILURE_RATE = env.float("ALERT_FAILURE_RATE", default=0.20)
# The oldest payment waiting for the worker older than this.
ALERT_BACKLOG_SECONDS = env.int("ALERT_BACKLOG_SECONDS", default=120)
_HH_MM = r"([01]\d|2[0-3]):[0-5]\d"
if not re.fullmatch(rf"{_HH_MM}-({_HH_MM}|24:00)", ALERT_HOURS):
    raise ImproperlyConfigured(f"ALERT_HOURS must look like 07:00-21:00 (got {ALERT_HOURS!r})")
if not 0 < ALERT_FAILURE_RATE < 1:
    raise ImproperlyConfigured("ALERT_FAILURE_RATE is a fraction between 0 and 1, e.g. 0.2 for 20%")
if ALERT_SILENCE_MINUTES < 1 or ALERT_BACKLOG_SECONDS < 1:
    raise ImproperlyConfigured("ALERT_SILENCE_MINUTES and ALERT_BACKLOG_SECONDS must be positive")

# --- SMS ----------------------------------------------------------------------------------------
SMS_BACKEND = env.str("SMS_BACKEND", default="console")
AFRICASTALKING_USERNAME = env.str("AFRICASTALKING_USERNAME", default="")
AFRICASTALKING_API_KEY = env.str("AFRICASTALKING_API_KEY", default="")
AFRICASTALKING_SENDER_ID = env.str("AFRICASTALKING_SENDER_ID", default="")
AFRICASTALKING_BASE_URL = env.str("AFRICASTALKING_BASE_URL", default="")
SMS_HTTP_TIMEOUT = env.float("SMS_HTTP_TIMEOUT", default=10.0)
if SMS_BACKEND not in ("console", "africastalking"):
    raise ImproperlyConfigured("SMS_BACKEND must be 'console' or 'africastalking'")
if SMS_BACKEND == "africastalking" and not (AFRICASTALKING_USERNAME and AFRICASTALKING_API_KEY):
    raise ImproperlyConfigured(
        "SMS_BACKEND=africastalking needs AFRICASTALKING_USERNAME and AFRICASTALKING_API_KEY"
    )

# --- Staff Telegram bot (bots/) ------------------------------------------------------------------
# Without a token the bot channel is off: no telegram sender, staff alerts go by SMS.
TELEGRAM_BOT_TOKEN = env.str("TELEGRAM_BOT_TOKEN", default="")
TELEGRAM_BOT_USERNAME = env.str("TELEGRAM_BOT_USERNAME", default="")
TELEGRAM_WEBHOOK_SECRET = env.str("TELEGRAM_WEBHOOK_SECRET", default="")
# PTB appends the token to this ("https://api.telegram.org/bot" + token + "/sendMessage").
TELEGRAM_API_BASE_URL = env.str("TELEGRAM_API_BASE_URL", default="https://api.telegram.org/bot")
TELEGRAM_HTTP_TIMEOUT = env.float("TELEGRAM_HTTP_TIMEOUT", default=10.0)
# Telegram's limits, shared by every worker through the cache: seconds between messages to one
# chat, and messages per second in all.
TELEGRAM_CHAT_INTERVAL = env.float("TELEGRAM_CHAT_INTERVAL", default=1.0)
TELEGRAM_MESSAGES_PER_SECOND = env.int("TELEGRAM_MESSAGES_PER_SECOND", default=25)
# Public address of the staff pages, for the payment links in alerts.
STAFF_BASE_URL = env.str("STAFF_BASE_URL", default="") or ("http://127.0.0.1:8000" if DEBUG else "")
if TELEGRAM_BOT_TOKEN:
    OUTBOX_SENDERS["telegram"] = "bots.senders.send_telegram"
    if not TELEGRAM_BOT_USERNAME:
        raise ImproperlyConfigured(
            "TELEGRAM_BOT_TOKEN is set: set TELEGRAM_BOT_USERNAME too (for link codes)"
        )
    if not DEBUG and len(TELEGRAM_WEBHOOK_SECRET) < 16:
        raise ImproperlyConfigured("TELEGRAM_BOT_TOKEN is set: TELEGRAM_WEBHOOK_SECRET needs 16+ characters")
    if not DEBUG and not STAFF_BASE_URL.startswith("https://"):
        raise ImproperlyConfigured(
            "TELEGRAM_BOT_TOKEN is set: STAFF_BASE_URL must be the https:// staff address"
        )

# --- Borrower channels: USSD and incoming SMS (Africa's Talking) ------------------------------
# Africa's Talking calls /ussd/callback/, /ussd/events/, /ussd/sms/inbound/ and /ussd/sms/delivery/
# with ?secret=<this> in the URL registered with it; a request without it gets 403.
AFRICASTALKING_CALLBACK_SECRET = env.str("AFRICASTALKING_CALLBACK_SECRET", default="")
# USSD codes this system answers (e.g. *384*123#); empty answers any. Others get a generic END.
USSD_SERVICE_CODES = env.list("USSD_SERVICE_CODES", default=[])
# Keys of the PIN hash (HMAC-SHA256), newest first: PINs are checked against each and re-hashed with
# the first, so a key rotates by prepending a new one. Kept out of the database on purpose.
USSD_PIN_KEYS = env.list("USSD_PIN_KEYS", default=[_dev_fernet_key("ussd-pin:" + SECRET_KEY)])
# How an unregistered caller reaches the lender (shown on USSD and in SMS replies).
LENDER_CONTACT_PHONE = env.str("LENDER_CONTACT_PHONE", default="0700 000 000")
_missing_channels = [
    name
    for name in ("AFRICASTALKING_CALLBACK_SECRET", "USSD_PIN_KEYS")
    if not DEBUG and not env.str(name, default="").strip()
]
if _missing_channels:
    raise ImproperlyConfigured(
        "DJANGO_DEBUG is false, so these settings must be set in the environment: "
        + ", ".join(_missing_channels)
    )

# --- M-Pesa (Daraja) ---------------------------------------------------------------------------
MPESA_SANDBOX_URL = env.str("MPESA_SANDBOX_URL", default="https://sandbox.safaricom.co.ke")
MPESA_PRODUCTION_URL = env.str("MPESA_PRODUCTION_URL", default="https://api.safaricom.co.ke")
# Empty: the emulator is reached at the local configuration's base URL + /daraja-emulator.
MPESA_EMULATOR_URL = env.str("MPESA_EMULATOR_URL", default="")
MPESA_HTTP_TIMEOUT = env.float("MPESA_HTTP_TIMEOUT", default=10.0)
# A confirmation over this amount (M-Pesa's per-transaction ceiling) is kept and held for staff,
# never posted by itself; validation refuses it (C2B00013).
MPESA_MAX_AMOUNT = Decimal(env.str("MPESA_MAX_AMOUNT", default="250000.00"))
# The local Daraja emulator answers at /daraja-emulator/; a development tool only.
MPESA_EMULATOR_ENABLED = env.bool("MPESA_EMULATOR_ENABLED", default=DEBUG)
if MPESA_EMULATOR_ENABLED and not DEBUG:
    raise ImproperlyConfigured("MPESA_EMULATOR_ENABLED must not be on in production (DJANGO_DEBUG=false)")

# --- Internationalisation -----------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("sw", "Kiswahili")]
TIME_ZONE = "Africa/Nairobi"
USE_I18N = True
USE_TZ = True

# --- Static files -------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Security (production) ----------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    # Load balancers probe the health checks, and Prometheus scrapes, over plain HTTP from inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # HTTPS ends at the proxy in front of gunicorn; trust its X-Forwarded-Proto header.
    if env.bool("DJANGO_BEHIND_PROXY", default=True):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Logging ------------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "core.logfilters.MaskingFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own console handlers (DEBUG, and runserver's request lines) would print without
        # masking: its loggers go through the project's handler instead.
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "django.server": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "django.db.backends": {"level": "INFO"},
        # httpx logs every URL it calls at INFO, callback URLs (which carry their token) included.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
# Workers log through the configuration above (masking included) instead of Celery's own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

"""gunicorn's settings, read by any ``gunicorn config.wsgi`` started in the repository root (gunicorn
loads ./gunicorn.conf.py by default); deploy/Procfile names it explicitly. Command-line flags win.

Threaded workers (gthread): a sync worker serves one connection at a time and waits, up to the
whole ``timeout``, for a client that sent its headers and dawdles over the body, so three idle
clients froze every M-Pesa callback for 30 s. A gthread worker serves others on its other threads
meanwhile, and a body that stops arriving for ``BODY_TIMEOUT`` seconds ends its request (the view
stores what came, as a malformed request) instead of holding the thread. In production put a
buffering reverse proxy in front as well (deploy/nginx.conf): it reads each request whole before
gunicorn sees it, so slow clients never reach a worker at all.

Metrics: every worker counts into ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode),
so that a scrape of /metrics, whichever worker answers it, adds up all of them. ``on_starting`` sets
it (a default directory when unset) and clears the previous run's files before the first fork
(config/metrics_dir.py); ``child_exit`` does prometheus-client's bookkeeping for a worker that ended.
"""

import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
worker_class = "gthread"
# Threads per worker: requests served side by side while others wait on their clients. Each thread
# keeps its own database connection (DB_CONN_MAX_AGE), so workers x threads connections at most.
threads = int(os.environ.get("GUNICORN_THREADS", "12"))
# A worker that does not report in this long is killed and replaced (its threads all stuck).
timeout = 30
graceful_timeout = 30
# Seconds an idle kept-alive connection stays open (a proxy in front reuses them).
keepalive = 5
# Seconds a request's body may stall between two reads before the request is ended.
BODY_TIMEOUT = float(os.environ.get("GUNICORN_BODY_TIMEOUT", "10"))

# "-" is standard output; empty turns the access log off (the benchmark does, to measure the app).
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
# The access log with the same redaction as the application's logs (tokens, phone numbers, users).
logger_class = "config.gunicorn_logging.RedactingLogger"
# The proxy whose X-Forwarded-* headers gunicorn believes.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def pre_request(worker, req):
    # gthread puts each connection's socket back in blocking mode (no timeout) before a request: a
    # client that never sends the body it announced would hold this thread for ever.
    sock = getattr(getattr(req, "unreader", None), "sock", None)
    if sock is not None:
        sock.settimeout(BODY_TIMEOUT)


def on_starting(server):
    # In the master, before any worker exists: each worker inherits the variable. Imported here, not
    # at the top: prometheus_client chooses its mode when first imported, and must see the variable.
    from config.metrics_dir import metrics_dir_prepare

    server.log.info("Metrics of every worker counted in %s", metrics_dir_prepare())


def child_exit(server, worker):
    # Removes the files of the worker's live gauges (prometheus-client's multiprocess mode asks for
    # this call); its counters and histograms stay, so totals do not drop when a worker is replaced.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)

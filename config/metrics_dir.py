"""The directory where the processes of one machine write their Prometheus counts, made ready as they
start (prometheus-client's multiprocess mode; ``core.metrics`` reads it at every scrape).

prometheus-client reads ``PROMETHEUS_MULTIPROC_DIR`` from the environment when a process first counts,
writes that process's counters and histograms to ``<type>_<pid>.db`` files there, and a scrape of
/metrics adds up every file. Its documentation asks for the variable to be set before the processes
start (so that each one inherits it) and for the directory to be wiped between runs, before start-up:
a previous run's files would be added to this run's counts.

``metrics_dir_prepare`` does both. gunicorn.conf.py calls it when gunicorn starts, before it forks a
worker; deploy/Procfile starts the Celery worker through ``python -m config.metrics_dir celery ...``,
which calls it and then replaces itself with the command. Without ``PROMETHEUS_MULTIPROC_DIR`` both use
``metrics_dir_default()``, so that the web and the worker processes of one machine count into the same
directory whatever the operator set.

"Wiped" means the files of processes that no longer run. gunicorn and the Celery worker start side by
side, and the second must not delete the files the first is already writing: a deleted file goes on
being written, but no scrape reads it again. The files of a process that ended during a run (a worker
replaced after a timeout) stay until the next start, so that totals do not go down meanwhile.
"""

import os
import sys
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

ENVIRONMENT_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def metrics_dir_default() -> Path:
    """The directory used when ``PROMETHEUS_MULTIPROC_DIR`` is unset or empty: one per user in the
    temporary directory (in a shared /tmp, another user cannot have made it first)."""
    return Path(tempfile.gettempdir()) / f"haven-metrics-{os.getuid()}"


def metrics_dir_prepare(environ: MutableMapping[str, str] = os.environ) -> Path:
    """Make the metrics directory ready for processes about to start, in this process's environment
    (which they inherit): set ``PROMETHEUS_MULTIPROC_DIR`` (to the default when unset or empty),
    create the directory (readable by its owner only) and delete the files of processes that no
    longer run. Call it before this process counts anything. Returns the directory; raises
    ``OSError`` when it cannot be created."""
    path = Path(environ.get(ENVIRONMENT_VARIABLE) or metrics_dir_default())
    environ[ENVIRONMENT_VARIABLE] = str(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for file in path.glob("*.db"):  # every one is read by a scrape: none may be left that is not current
        if not _current(file):
            file.unlink(missing_ok=True)
    return path


def _current(file: Path) -> bool:
    """Whether ``file`` (``<type>_<pid>.db``) belongs to a process running now, other than this one
    (which has counted nothing yet: a file with its number is an old process's)."""
    pid = file.stem.rpartition("_")[2]
    if not pid.isdigit() or int(pid) <= 0 or int(pid) == os.getpid():
        return False
    return _running(int(pid))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: nothing is sent, the process is only looked up
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def main(argv: list[str]) -> None:
    """``python -m config.metrics_dir COMMAND [ARG...]``: prepare the directory, then run COMMAND in
    this process (its pid, its signals), with ``PROMETHEUS_MULTIPROC_DIR`` set."""
    if not argv:
        raise SystemExit("usage: python -m config.metrics_dir COMMAND [ARG...]")
    metrics_dir_prepare()
    os.execvp(argv[0], argv)  # noqa: S606 - the Procfile's own command line


if __name__ == "__main__":
    main(sys.argv[1:])

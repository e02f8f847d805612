"""Settings of the test run: the project's own (``config.settings``), with development asked for.

A process started with no environment runs as production and refuses to start without its secrets;
the test suite opts in to development here, as ``make run`` does on its command line. A value
already in the environment wins (CI may test production settings this way).
"""

import os

os.environ.setdefault("DJANGO_DEBUG", "true")
# The run's cache keys carry this prefix, and tests clear only those (tests/cache.py): a Redis
# database shared with anything else keeps its other keys.
os.environ.setdefault("CACHE_KEY_PREFIX", "haven-test")

from config.settings import *  # noqa: F403

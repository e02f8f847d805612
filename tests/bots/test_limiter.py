"""The Telegram rate limiter holds across processes: two worker processes writing to one chat keep
one message per interval between them, and all together keep to the messages-per-second cap."""

import itertools
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORKER = """
import json, sys, time
import django
django.setup()
from bots.clients.telegram import TelegramLimiter
start, chats = float(sys.argv[1]), json.loads(sys.argv[2])
limiter = TelegramLimiter()
while time.time() < start:
    time.sleep(0.005)
stamps = []
for chat in chats:
    stamps.append([limiter.acquire(chat), chat])
print(json.dumps(stamps))
"""


def run_two_workers(tmp_path, chats: list[int], **settings: str) -> list[list]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.bots.shared_cache_settings",
        "DJANGO_READ_ENV_FILE": "false",
        "LIMITER_DB": str(tmp_path / "cache.sqlite3"),
        "LIMITER_PREFIX": f"limiter-test-{uuid.uuid4().hex}",
        **settings,
    }
    if not os.environ.get("REDIS_URL"):
        subprocess.run(
            [sys.executable, "manage.py", "createcachetable"],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=60,
            capture_output=True,
        )
    start = time.time() + 2  # both processes are set up by then and start together
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(start), json.dumps(chats)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    stamps: list[list] = []
    for worker in workers:
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        stamps += json.loads(out.strip().splitlines()[-1])
    return sorted(stamps)


def test_the_limits_hold_across_two_processes(tmp_path):
    # Each process writes three times to one chat, then once to each of six others.
    stamps = run_two_workers(
        tmp_path,
        [4242] * 3 + list(range(1, 7)),
        TELEGRAM_CHAT_INTERVAL="0.3",
        TELEGRAM_MESSAGES_PER_SECOND="4",
    )
    assert len(stamps) == 18
    one_chat = [at for at, chat in stamps if chat == 4242]
    gaps = [b - a for a, b in itertools.pairwise(one_chat)]
    assert len(one_chat) == 6 and min(gaps) >= 0.3, gaps
    # No one-second window holds more than the cap.
    times = [at for at, _ in stamps]
    busiest = max(sum(1 for t in times if first <= t < first + 1.0) for first in times)
    assert busiest <= 4, stamps

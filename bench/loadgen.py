"""Load generator for ``bench/payments.py``: POSTs prepared bodies to one URL and measures the answers.

    .venv/bin/python bench/loadgen.py --url URL --payloads FILE --out FILE [--concurrency 32]
    .venv/bin/python bench/loadgen.py --url URL --payloads FILE --out FILE --rate 50

It runs as its own process so that the client's work is not done by the benchmark's bookkeeping
process and its event loop is slowed by nothing else. ``--payloads`` is a JSON list of request
bodies (strings). Without ``--rate`` it is a closed loop: ``--concurrency`` senders each send the
next body as soon as their previous answer arrived. With ``--rate`` it is an open loop: body ``i``
is due ``i / rate`` seconds after the start whatever happened to the others, and its latency is
counted from that due time, so a server that falls behind cannot hide its queue (no coordinated
omission). Every request has a timeout (``--timeout``, 10 s).

``--client raw`` (the default) speaks HTTP/1.1 over asyncio streams, one connection per request, as
gunicorn's sync workers close the connection after every answer anyway; ``--client httpx`` uses
httpx. The raw client costs a fraction of httpx's CPU per request, which matters when the generator
shares two cores with the server it measures (the result reports the generator's CPU seconds).

``--sessions`` (``bench/ussd.py``) reads a JSON list of sessions, each a list of bodies sent one
after the other, with a pause of ``--think-ms MIN,MAX`` between them (a person typing, not
counted in the latency); ``--concurrency`` sessions run at once. ``--content-type`` sets the
request's Content-Type and ``--ok-prefix`` (repeatable) makes any HTTP 200 whose body starts with
one of the prefixes an acknowledgement (a USSD ``CON ``/``END `` answer).

An answer is an acknowledgement when it is HTTP 200 with ``ResultCode`` 0 (or ``"0"``). The result
file holds counts, latency percentiles in milliseconds (over every HTTP answer), acknowledgements
per second (over the wall time from the first request sent to the last answer), the indexes of the
acknowledged bodies, the epoch time the first request was sent, a few answers that were not
acknowledgements, and the generator's CPU seconds; with ``--timeline``, when each acknowledgement
came (epoch seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

HEADERS = {"Content-Type": "application/json", "User-Agent": "haven-bench-loadgen"}
SAMPLES_KEPT = 5


@dataclass(frozen=True, slots=True)
class Outcome:
    latency_ms: float
    acknowledged: bool
    error: str | None = None  # "HTTP 400", "timeout", an exception name; None when acknowledged
    answer: bytes = b""  # kept only for answers that are not acknowledgements
    done: float = 0.0  # time.perf_counter() when the answer (or the failure) came


Send = Callable[[str, float], Awaitable[Outcome]]


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


OK_PREFIXES: tuple[bytes, ...] = ()  # set from --ok-prefix


def _outcome(status: int, content: bytes, since: float) -> Outcome:
    done = time.perf_counter()
    latency_ms = (done - since) * 1000
    if OK_PREFIXES:
        acknowledged = status == 200 and content.startswith(OK_PREFIXES)
    else:
        try:
            acknowledged = status == 200 and json.loads(content).get("ResultCode") in (0, "0")
        except (ValueError, AttributeError):
            acknowledged = False
    if acknowledged:
        return Outcome(latency_ms, True, done=done)
    return Outcome(latency_ms, False, f"HTTP {status}", content[:300], done=done)


def _failure(error: str, since: float) -> Outcome:
    done = time.perf_counter()
    return Outcome((done - since) * 1000, False, error, done=done)


class RawClient:
    """HTTP/1.1 over asyncio streams, one connection per request (``Connection: close``)."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.timeout = parts.hostname, parts.port or 80, timeout
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.head = (
            f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in HEADERS.items())
            + "Connection: close\r\n"
        )

    async def send(self, body: str, since: float) -> Outcome:
        encoded = body.encode()
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port)
                try:
                    writer.write(f"{self.head}Content-Length: {len(encoded)}\r\n\r\n".encode() + encoded)
                    answer = await reader.read()  # to EOF: the server closes after one answer
                finally:
                    writer.close()
        except TimeoutError:
            return _failure("timeout", since)
        except OSError as exc:
            return _failure(type(exc).__name__, since)
        head, _, content = answer.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.") or not head[9:12].isdigit():
            return _failure("not HTTP", since)
        return _outcome(int(head[9:12]), content, since)


class HttpxClient:
    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self.client, self.url = client, url

    async def send(self, body: str, since: float) -> Outcome:
        try:
            response = await self.client.post(self.url, content=body.encode(), headers=HEADERS)
        except httpx.TimeoutException:
            return _failure("timeout", since)
        except httpx.HTTPError as exc:
            return _failure(type(exc).__name__, since)
        return _outcome(response.status_code, response.content, since)


async def closed_loop(send: Send, bodies: list[str], concurrency: int) -> list[Outcome]:
    outcomes: list[Outcome] = [_failure("not sent", 0.0)] * len(bodies)
    indexes = iter(range(len(bodies)))  # shared: each body is taken by exactly one sender

    async def sender() -> None:
        for index in indexes:
            outcomes[index] = await send(bodies[index], time.perf_counter())

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return outcomes


async def sessions_loop(
    send: Send, sessions: list[list[str]], concurrency: int, think_ms: tuple[float, float]
) -> list[Outcome]:
    """``concurrency`` sessions at a time, each sending its bodies in order with a pause between."""
    import random

    pauses = random.Random(20_251_204)
    starts = [sum(len(session) for session in sessions[:index]) for index in range(len(sessions))]
    outcomes: list[Outcome] = [_failure("not sent", 0.0)] * sum(len(session) for session in sessions)
    indexes = iter(range(len(sessions)))

    async def sender() -> None:
        # Sessions begin at scattered moments, as people dial, not all in the same millisecond.
        await asyncio.sleep(pauses.uniform(0, think_ms[1]) / 1000)
        for index in indexes:
            for step, body in enumerate(sessions[index]):
                if step:
                    await asyncio.sleep(pauses.uniform(*think_ms) / 1000)
                outcomes[starts[index] + step] = await send(body, time.perf_counter())

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return outcomes


async def open_loop(send: Send, bodies: list[str], rate: float) -> list[Outcome]:
    started = time.perf_counter()
    tasks = []
    for index, body in enumerate(bodies):
        due = started + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(body, due)))
    return list(await asyncio.gather(*tasks))


async def _drive(
    args: argparse.Namespace, send: Send, bodies: list[str]
) -> tuple[list[Outcome], float, float, float]:
    first_sent_at, started = time.time(), time.perf_counter()
    if args.sessions:
        outcomes = await sessions_loop(send, bodies, args.concurrency, args.think_ms)  # type: ignore[arg-type]
    elif args.rate is None:
        outcomes = await closed_loop(send, bodies, args.concurrency)
    else:
        outcomes = await open_loop(send, bodies, args.rate)
    return outcomes, first_sent_at, started, time.perf_counter() - started


async def run(args: argparse.Namespace) -> dict:
    global OK_PREFIXES
    OK_PREFIXES = tuple(prefix.encode() for prefix in args.ok_prefix)
    HEADERS["Content-Type"] = args.content_type
    bodies = json.loads(Path(args.payloads).read_text(encoding="utf-8"))
    if args.client == "raw":
        outcomes, first_sent_at, started, wall_s = await _drive(
            args, RawClient(args.url, args.timeout).send, bodies
        )
    else:
        connections = args.concurrency if args.rate is None else 256
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(args.timeout)) as client:
            outcomes, first_sent_at, started, wall_s = await _drive(
                args, HttpxClient(client, args.url).send, bodies
            )
    answered = [o.latency_ms for o in outcomes if o.acknowledged or (o.error or "").startswith("HTTP")]
    acknowledged = [index for index, outcome in enumerate(outcomes) if outcome.acknowledged]
    errors = Counter(outcome.error for outcome in outcomes if not outcome.acknowledged)
    samples = [
        f"{outcome.error}: {outcome.answer.decode(errors='replace')}"
        for outcome in outcomes
        if not outcome.acknowledged and outcome.answer
    ]
    result = {
        "url": args.url,
        "client": args.client,
        "mode": "closed" if args.rate is None else "open",
        "concurrency": args.concurrency if args.rate is None else None,
        "rate": args.rate,
        "requests": len(outcomes),
        "acknowledged": len(acknowledged),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "error_samples": samples[:SAMPLES_KEPT],
        "wall_s": wall_s,
        "acks_per_s": len(acknowledged) / wall_s if wall_s else 0.0,
        "latency_ms": {
            "p50": percentile(answered, 0.50),
            "p90": percentile(answered, 0.90),
            "p99": percentile(answered, 0.99),
            "max": max(answered, default=None),
            "mean": sum(answered) / len(answered) if answered else None,
        },
        "first_sent_at": first_sent_at,
        "acknowledged_indexes": acknowledged,
        "cpu_s": time.process_time(),
    }
    if args.timeline:
        # When each acknowledgement came, in seconds since the epoch (ms precision), in order.
        result["acknowledged_at"] = sorted(
            round(first_sent_at + outcome.done - started, 3) for outcome in outcomes if outcome.acknowledged
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--payloads", required=True, help="JSON list of request bodies")
    parser.add_argument("--out", required=True, help="where to write the result (JSON)")
    parser.add_argument("--concurrency", type=int, default=32, help="senders in the closed loop")
    parser.add_argument("--rate", type=float, default=None, help="requests per second (open loop)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds, per request")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument("--sessions", action="store_true", help="payloads are sessions: lists of bodies")
    parser.add_argument(
        "--think-ms",
        type=lambda text: tuple(float(part) for part in text.split(",")),
        default=(0.0, 0.0),
        help="MIN,MAX pause between a session's requests",
    )
    parser.add_argument("--content-type", default=HEADERS["Content-Type"])
    parser.add_argument(
        "--ok-prefix", action="append", default=[], help="a 200 body starting so is acknowledged"
    )
    parser.add_argument("--timeline", action="store_true", help="also write when each acknowledgement came")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    Path(args.out).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()

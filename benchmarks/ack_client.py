"""Load generator: signed app_mention events sent to a Bolt app, all at once or at a steady rate.

    python -m benchmarks.ack_client URL EVENTS_FILE [--rate PER_SECOND] [--warm-up]

EVENTS_FILE holds a JSON list of Events API envelopes, each a mention that starts a new thread, made by the harness
with the fake Slack: as on real Slack, each mentioned message is stored there, so a retried task reads its thread
back. With --warm-up the first is sent, untimed, before the others. Every envelope is signed before sending begins.
Prints JSON: {"started": time.monotonic() when sending began, "latencies": [seconds, ...], "acked":
[time.monotonic() when each acknowledgement arrived, ...], "ts": [each mention's ts, ...]}, in the order of the file
(the warm-up left out). It runs in a process of its own so that neither the fakes' work nor its own skews the timing;
time.monotonic() is one clock for every process on Linux.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes import signed_event_request
from tests.integration.harness import SIGNING_SECRET

Request = tuple[str, dict[str, str]]
# At a steady rate few requests are in flight at once; a burst needs a connection each.
RATE_CONNECTIONS = 50


async def send(session: aiohttp.ClientSession, url: str, request: Request) -> tuple[float, float]:
    """Seconds until the app acknowledged one event, and when it did (time.monotonic())."""
    body, headers = request
    start = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"status {response.status}")
    return time.perf_counter() - start, time.monotonic()


async def open_connections(session: aiohttp.ClientSession, url: str, count: int) -> None:
    """Open `count` keep-alive connections first, so what is timed is the acknowledgement, not the handshake.

    Slack's deliveries reach a dyno over its router's pooled connections, so a fresh TCP connection per event
    would measure something no deployed bot sees. The path is one no app serves: its 404 keeps the connection
    open and, unlike /healthz, costs the bot no Redis command that would be counted as the mentions'.
    """
    nowhere = url.replace("/slack/events", "/bench-connect")

    async def one() -> None:
        async with session.get(nowhere) as response:
            await response.read()

    await asyncio.gather(*(one() for _ in range(count)))


async def paced(
    session: aiohttp.ClientSession, url: str, requests: list[Request], rate: float
) -> list[tuple[float, float]]:
    """Send request i at start + i / rate (open loop: a slow acknowledgement never delays the next send)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    sends: list[asyncio.Task[tuple[float, float]]] = []
    for i, request in enumerate(requests):
        wait = start + i / rate - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        sends.append(asyncio.create_task(send(session, url, request)))
    return list(await asyncio.gather(*sends))


async def main(args: argparse.Namespace, envelopes: list[dict[str, Any]]) -> dict[str, object]:
    """Sign every mention first, warm up, then send them and time each acknowledgement."""
    signed = [signed_event_request(envelope, SIGNING_SECRET) for envelope in envelopes]
    warm_up, requests = (signed[0], signed[1:]) if args.warm_up else (None, signed)
    count = len(requests)
    connections = count if args.rate <= 0 else min(count, RATE_CONNECTIONS)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await open_connections(session, args.url, connections)
        if warm_up is not None:
            # The app's first event of the day is slower (Bolt looks up its identity then): keep it out.
            await send(session, args.url, warm_up)
        started = time.monotonic()
        if args.rate <= 0:
            sent = list(await asyncio.gather(*(send(session, args.url, r) for r in requests)))
        else:
            sent = await paced(session, args.url, requests, args.rate)
    return {
        "started": started,
        "latencies": [latency for latency, _ in sent],
        "acked": [acked for _, acked in sent],
        "ts": [envelope["event"]["ts"] for envelope in envelopes[1 if args.warm_up else 0 :]],
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("events", help="a JSON file of Events API envelopes (with --warm-up, that mention first)")
    parser.add_argument("--rate", type=float, default=0.0, help="mentions per second; 0 sends all at once")
    parser.add_argument("--warm-up", action="store_true", help="send the file's first mention first, untimed")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    print(json.dumps(asyncio.run(main(arguments, json.loads(Path(arguments.events).read_text())))))

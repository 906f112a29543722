"""Load generator: signed app_mention events sent to a Bolt app, all at once or at a steady rate.

    python -m benchmarks.ack_client URL TEAM_ID BOT_USER_ID CHANNEL COUNT [--rate PER_SECOND] [--warm-up]

Prints JSON: {"started": time.monotonic() when sending began, "latencies": [seconds, ...], "acked": [time.monotonic()
when each acknowledgement arrived, ...], "ts": [each mention's ts, ...]}, in the order the mentions were made (the
text of mention n ends in "ack n"). It runs in a process of its own so that neither the fakes' work nor its own skews
the timing; time.monotonic() is one clock for every process on Linux. Each mention starts a new thread.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp

from tests.fakes import app_mention_event, event_envelope, signed_event_request
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


async def main(args: argparse.Namespace) -> dict[str, object]:
    """Sign every mention first, warm up, then send them and time each acknowledgement."""
    events = [
        app_mention_event(f"<@{args.bot_user}> ack {n}", user="U0BENCH", channel=args.channel)
        for n in range(-1, args.count)
    ]
    warm_up, *requests = [signed_event_request(event_envelope(e, team_id=args.team), SIGNING_SECRET) for e in events]
    connections = args.count if args.rate <= 0 else min(args.count, RATE_CONNECTIONS)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await open_connections(session, args.url, connections)
        if args.warm_up:
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
        "ts": [event["ts"] for event in events[1:]],
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("team")
    parser.add_argument("bot_user")
    parser.add_argument("channel")
    parser.add_argument("count", type=int)
    parser.add_argument("--rate", type=float, default=0.0, help="mentions per second; 0 sends all at once")
    parser.add_argument("--warm-up", action="store_true", help="send one untimed mention first")
    return parser.parse_args(argv)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(parse()))))

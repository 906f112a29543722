"""The web process's front: the HTTP server (Slack events, /healthz, /metrics) and, in Socket Mode, the Slack socket.
A worker-only process serves /healthz and /metrics alone, through the same class.

It receives what it serves (the handlers, the port, the socket) from the composition root, never the composition.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest

from bot.core import metrics


def build_web_app(
    *,
    health: Handler,
    events: Handler | None,
    pages: Mapping[str, Handler] | None = None,
    metrics: Handler | None = None,
) -> web.Application:
    """The HTTP server: GET /healthz always, GET /metrics when `metrics` is given, POST /slack/events in HTTP mode
    (`events` given), and GET `pages` (the OAuth install's, in OAuth mode)."""
    web_app = web.Application()
    web_app.router.add_get("/healthz", health)
    if metrics is not None:
        web_app.router.add_get("/metrics", metrics)
    if events is not None:
        web_app.router.add_post("/slack/events", events)
    for path, page in (pages or {}).items():
        web_app.router.add_get(path, page)
    return web_app


class TimedSocketModeHandler(AsyncSocketModeHandler):
    """Bolt's Socket Mode handler, timing each envelope from its arrival to its acknowledgement (ACK_SECONDS), as
    POST /slack/events times each request in HTTP mode."""

    # Bolt's own handle() narrows the base class's client type the same way, with the same ignore.
    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        """Dispatch the envelope to Bolt and acknowledge it, as Bolt does; then observe the time it took."""
        arrived = time.monotonic()
        await super().handle(client, req)
        metrics.ACK_SECONDS.observe(time.monotonic() - arrived)


class WebFront:
    """Serves HTTP on a port and, in Socket Mode, holds the Slack socket."""

    def __init__(
        self,
        *,
        port: int,
        health: Handler,
        events: Handler | None,
        socket: AsyncSocketModeHandler | None,
        pages: Mapping[str, Handler] | None = None,
        metrics: Handler | None = None,
    ) -> None:
        self._port = port
        self._web_app = build_web_app(health=health, events=events, pages=pages, metrics=metrics)
        self._socket = socket
        self._takes_events = events is not None or socket is not None
        self._site: web.AppRunner | None = None

    def describe(self) -> str:
        """How Slack (or only a scraper, in a worker) reaches this process."""
        if not self._takes_events:
            return f"serving /metrics and /healthz on port {self._port}"
        return f"listening on port {self._port} ({'socket mode' if self._socket else 'http mode'})"

    async def start(self) -> None:
        """Serve HTTP, and connect the socket in Socket Mode."""
        self._site = web.AppRunner(self._web_app, access_log=None)
        await self._site.setup()
        await web.TCPSite(self._site, "0.0.0.0", self._port).start()  # reached by the router
        if self._socket is not None:
            await self._socket.connect_async()  # type: ignore[no-untyped-call]  # Bolt leaves it unannotated

    async def stop_listening(self) -> None:
        """Stop taking events (first, so that Slack sends them to another process while tasks drain)."""
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]  # Bolt leaves it unannotated

    async def close(self) -> None:
        """Stop the HTTP server (last, so /healthz answers while tasks drain)."""
        if self._site is not None:
            await self._site.cleanup()

"""The web process's front: the HTTP server (Slack events, /healthz) and, in Socket Mode, the Slack socket."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

from bot.health import healthz_handler
from handlers.slack_requests import slack_events_handler

if TYPE_CHECKING:
    from bot.app import Bot


def build_web_app(bot: Bot, *, with_events: bool) -> web.Application:
    """The HTTP server: /healthz always, POST /slack/events in HTTP mode."""

    def details() -> dict[str, object]:
        mode = "socket" if bot.settings.socket_mode else "http"
        return {"mode": mode, "dyno": bot.settings.dyno, "active_threads": bot.runner.active_threads}

    web_app = web.Application()
    web_app.router.add_get("/healthz", healthz_handler(bot.redis, details))
    signing_secret = bot.settings.slack_signing_secret
    if with_events and signing_secret is not None:
        handler = slack_events_handler(bot.bolt, signing_secret.get_secret_value(), bot.intake_first)
        web_app.router.add_post("/slack/events", handler)
    return web_app


class WebFront:
    """The web process's front: the HTTP server (events, /healthz) and, in Socket Mode, the Slack socket."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot
        self._site: web.AppRunner | None = None
        self._socket: AsyncSocketModeHandler | None = None

    def describe(self) -> str:
        """How Slack reaches this process."""
        mode = "socket mode" if self._bot.settings.socket_mode else "http mode"
        return f"listening on port {self._bot.settings.port} ({mode})"

    async def start(self) -> None:
        """Serve HTTP, and connect the socket in Socket Mode."""
        settings = self._bot.settings
        self._site = web.AppRunner(build_web_app(self._bot, with_events=not settings.socket_mode), access_log=None)
        await self._site.setup()
        await web.TCPSite(self._site, "0.0.0.0", settings.port).start()  # reached by the router
        if settings.slack_app_token is not None:
            self._socket = AsyncSocketModeHandler(self._bot.bolt, settings.slack_app_token.get_secret_value())
            await self._socket.connect_async()  # type: ignore[no-untyped-call]  # Bolt leaves it unannotated

    async def stop_listening(self) -> None:
        """Stop taking events (first, so that Slack sends them to another process while tasks drain)."""
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]  # Bolt leaves it unannotated

    async def close(self) -> None:
        """Stop the HTTP server (last, so /healthz answers while tasks drain)."""
        if self._site is not None:
            await self._site.cleanup()

"""The web process's front: the HTTP server (Slack events, /healthz) and, in Socket Mode, the Slack socket."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_sdk.signature import SignatureVerifier

from bot.health import healthz_handler

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from bot.app import Bot


def build_web_app(bot: Bot, *, with_events: bool) -> web.Application:
    """The HTTP server: /healthz always, POST /slack/events in HTTP mode."""

    signing_secret = bot.settings.slack_signing_secret
    verifier = SignatureVerifier(signing_secret.get_secret_value()) if signing_secret else None

    async def slack_events(request: web.Request) -> web.Response:
        with bot.intake_first.taking_in():
            try:
                bolt_request = await to_bolt_request(request)
            except ValueError:  # a body that is not JSON or form data: Slack never sends one
                body = await request.text()
                if verifier is None or not verifier.is_valid_request(body, dict(request.headers)):
                    return web.Response(status=401, text="invalid signature")
                log.warning("refused a signed request whose body does not parse (%d bytes)", len(body))
                return web.Response(status=400, text="malformed body")
            return await to_aiohttp_response(await bot.bolt.async_dispatch(bolt_request))

    def details() -> dict[str, object]:
        mode = "socket" if bot.settings.socket_mode else "http"
        return {"mode": mode, "dyno": bot.settings.dyno, "active_threads": bot.runner.active_threads}

    web_app = web.Application()
    web_app.router.add_get("/healthz", healthz_handler(bot.redis, details))
    if with_events:
        web_app.router.add_post("/slack/events", slack_events)
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

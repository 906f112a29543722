"""A web server that is not Slack: it records every request that reaches it, to show the bot token never does."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from playground.server import LocalServer


@dataclass(frozen=True)
class Visit:
    """One request the other host received."""

    path: str
    headers: dict[str, str]


class OtherHost(LocalServer):
    """Answers any GET with a small text file, and keeps the path and headers of each request."""

    def __init__(self) -> None:
        self.visits: list[Visit] = []

    def add_routes(self, app: web.Application) -> None:
        """Every path."""
        app.router.add_get("/{tail:.*}", self._handle)

    @property
    def url(self) -> str:
        """Its base URL: another port of 127.0.0.1, so another origin than the fake Slack's."""
        return f"http://127.0.0.1:{self._port}/"

    def saw(self, secret: str) -> bool:
        """Whether `secret` arrived in any header of any request."""
        return any(secret in value for visit in self.visits for value in visit.headers.values())

    async def _handle(self, request: web.Request) -> web.Response:
        self.visits.append(Visit(request.path, dict(request.headers)))
        return web.Response(body=b"The word is OSPREY.", content_type="text/plain")

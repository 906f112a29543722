"""The lifecycle both fakes share: an aiohttp app on a free 127.0.0.1 port, usable as `async with`."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from aiohttp import web


class LocalServer:
    """Base of the fakes: subclasses add their routes and may release resources before stopping."""

    _runner: web.AppRunner | None = None
    _port: int = 0
    client_max_size: int = 1024**2  # aiohttp's default cap on a request body; a larger one gets a plain 413

    def add_routes(self, app: web.Application) -> None:
        """Register the fake's handlers."""
        raise NotImplementedError

    async def before_stop(self) -> None:
        """Release what would keep handlers or clients hanging (gates, websockets)."""

    async def start(self, port: int = 0) -> None:
        """Start serving on 127.0.0.1 at `port` (0: a free one)."""
        app = web.Application(client_max_size=self.client_max_size)
        self.add_routes(app)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop serving."""
        await self.before_stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

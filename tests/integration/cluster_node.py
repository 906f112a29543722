"""One `redis-server --cluster-enabled yes` child process of a local test cluster."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import redis

from tests.integration.redis_server import answers_ping


class NodeProcess:
    """One `redis-server --cluster-enabled yes` process: its ports and data folder outlive the process."""

    def __init__(self, folder: Path, port: int, bus_port: int, node_timeout_ms: int) -> None:
        self.folder = folder
        self.port = port
        self.bus_port = bus_port
        self.node_timeout_ms = node_timeout_ms
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """Whether its process is alive."""
        return self.process is not None and self.process.poll() is None

    def launch(self) -> None:
        """Start the process (again, with the same ports, data and nodes.conf); returns at once."""
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed"
        self.folder.mkdir(parents=True, exist_ok=True)
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder)]
        # An explicit bus port (Redis 7's cluster-port), picked free like the client port, instead of PORT+10000,
        # which may be taken or beyond 65535.
        args += ["--cluster-enabled", "yes", "--cluster-port", str(self.bus_port)]
        args += ["--cluster-config-file", "nodes.conf", "--cluster-node-timeout", str(self.node_timeout_ms)]
        # A replica may always stand in for its master, however long it was cut off: tests kill nodes at will.
        args += ["--cluster-replica-validity-factor", "0"]
        # The append-only file keeps every acknowledged write across a SIGKILL (written before the reply is sent).
        args += ["--appendonly", "yes", "--save", ""]
        # A new replica's first sync would otherwise wait 5 s for more replicas to share one transfer.
        args += ["--repl-diskless-sync-delay", "0"]
        args += ["--enable-debug-command", "local", "--logfile", str(self.folder / "redis.log")]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_answering(self, timeout: float) -> bool:
        """Whether it answers PING within `timeout` (False at once if it exits, for example on a taken port)."""
        assert self.process is not None
        return answers_ping(redis.Redis(port=self.port, socket_connect_timeout=0.2), self.process, timeout)

    def kill(self) -> None:
        """SIGKILL it by its pid and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log_tail(self, lines: int) -> str:
        """The last `lines` lines of its log."""
        path = self.folder / "redis.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

"""`redis-cli --cluster reshard` run in the background, so that a test keeps writing while slots move."""

from __future__ import annotations

import subprocess
from pathlib import Path


class Reshard:
    """One running (or finished) `redis-cli --cluster reshard`; its output goes to a log file."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.process = process
        self.log_path = log_path

    @classmethod
    def start(cls, port: int, from_id: str, to_id: str, slots: int, log_path: Path) -> Reshard:
        """Start moving `slots` slots from the master `from_id` to the master `to_id`, through the node on `port`."""
        command = ["redis-cli", "--cluster", "reshard", f"127.0.0.1:{port}", "--cluster-from", from_id]
        command += ["--cluster-to", to_id, "--cluster-slots", str(slots), "--cluster-yes"]
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return cls(process, log_path)

    @property
    def running(self) -> bool:
        """Whether it is still moving slots."""
        return self.process.poll() is None

    def wait(self, timeout: float = 60.0) -> None:
        """Wait until it ends; fail with its output unless it moved every slot."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the reshard did not finish within {timeout} s:\n{self.output()}") from None
        # redis-cli exits 0 on some failures ("[ERR] ..."), so its output is checked as well.
        if self.process.returncode != 0 or "[ERR]" in self.output():
            raise AssertionError(f"the reshard failed:\n{self.output()}")

    def output(self) -> str:
        """What redis-cli printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL it by its pid (a slot it was moving stays open: migrating on one node, importing on another)."""
        if self.running:
            self.process.kill()
            self.process.wait(10)

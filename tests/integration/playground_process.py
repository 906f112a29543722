"""`python -m bot dev` as a child process, for the tests that drive the playground."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from tests.integration.harness import REPO_ROOT, free_port

T = TypeVar("T")


def eventually(check: Callable[[], T | None], timeout: float = 20.0, what: str = "condition") -> T:
    """Poll `check` (a blocking call) until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"{what} not seen within {timeout} s")


class Playground:
    """`python -m bot dev` as a child process, with no Slack or Anthropic credentials."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://localhost:{self.port}/"
        self.log = workdir / "playground.log"
        env = {
            name: value for name, value in os.environ.items() if not name.startswith(("SLACK_", "ANTHROPIC_", "REDIS_"))
        }
        env.update(PORT=str(self.port), PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot", "dev"], cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def state(self, team: str | None = None) -> dict[str, Any]:
        """What the page would draw now of workspace `team` (the first one by default); {} while the playground is
        not up."""
        query = "?" + urlencode({"team": team}) if team else ""
        try:
            with urllib.request.urlopen(self.url + "playground/state" + query, timeout=2) as response:
                state: dict[str, Any] = json.load(response)
                return state
        except OSError:
            return {}

    def post(self, path: str, body: object) -> tuple[int, dict[str, Any]]:
        """POST JSON (or raw bytes) to the page's API; the status and the JSON answer."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path.lstrip("/"), data=data, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def messages(self, channel: str = "C0GENERAL", team: str | None = None) -> list[dict[str, Any]]:
        """The channel's top-level messages, each with its replies (in workspace `team`, the first by default)."""
        for entry in self.state(team).get("channels", []):
            if entry["id"] == channel:
                found: list[dict[str, Any]] = entry["messages"]
                return found
        return []

    def output(self) -> str:
        """Everything the playground and its bot logged."""
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        """Ctrl-C, and the exit code."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(30)

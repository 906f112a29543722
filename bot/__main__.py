"""`python -m bot` runs the web process (Slack intake and workers); `python -m bot worker` runs workers only."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Literal

from bot.config import load_settings
from bot.errors import ConfigError, RedisUnavailable

USAGE = "usage: python -m bot [web|worker]"


def main(argv: list[str]) -> int:
    """Parse the command line, load settings and run; returns the exit code."""
    if len(argv) > 1 or (argv and argv[0] not in ("web", "worker")):
        print(USAGE, file=sys.stderr)
        return 2
    mode: Literal["web", "worker"] = "worker" if argv == ["worker"] else "web"
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from bot.app import serve  # imported late: a settings error should not wait for the SDKs to load

    try:
        asyncio.run(serve(settings, mode))
    except RedisUnavailable as exc:
        logging.getLogger("bot").error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

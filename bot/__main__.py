"""`python -m bot` runs the web process (Slack intake and workers); `python -m bot worker` runs workers only;
`python -m bot dev` runs a local playground: the bot against a Slack emulator with a web page, no credentials."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from typing import Literal

USAGE = "usage: python -m bot [web|worker|dev]"


def main(argv: list[str]) -> int:
    """Parse the command line, load settings and run; returns the exit code."""
    if len(argv) > 1 or (argv and argv[0] not in ("web", "worker", "dev")):
        print(USAGE, file=sys.stderr)
        return 2
    if argv == ["dev"]:
        from bot.dev.supervisor import main as playground

        return playground()
    mode: Literal["web", "worker"] = "worker" if argv == ["worker"] else "web"
    # Importing the SDKs allocates about a million objects, and collecting them again and again while they load
    # costs a fifth of startup: the time a restarted dyno's unfinished tasks wait before they resume.
    gc.disable()
    try:
        from bot.config import load_settings
        from bot.errors import ConfigError, RedisUnavailable

        try:
            settings = load_settings()
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        from bot.app import serve  # after the settings: a settings error should not wait for the SDKs to load
    finally:
        gc.freeze()  # what is loaded now lives as long as the process: keep it out of every later collection
        gc.enable()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(settings, mode))
    except RedisUnavailable as exc:
        logging.getLogger("bot").error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`python -m bot` runs the web process (Slack intake and workers); `python -m bot worker` runs workers only;
`python -m bot dev` runs a local playground: the bot against a Slack emulator with a web page, no credentials;
`python -m bot migrate` moves the data of an earlier release to the current layout (each process also does at start);
`python -m bot migrate --queue-shards N` moves the data to N queue shards (with every process stopped)."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from typing import Literal

USAGE = "usage: python -m bot [web|worker|dev|migrate [--queue-shards N]]"
SHARDS_OPTION = "--queue-shards"


def queue_shards_argument(argv: list[str]) -> int | None:
    """N of `migrate --queue-shards N` (or `--queue-shards=N`); None if argv is not that form."""
    if argv[:1] != ["migrate"]:
        return None
    option = argv[1:]
    if len(option) == 1 and option[0].startswith(SHARDS_OPTION + "="):
        option = [SHARDS_OPTION, option[0].removeprefix(SHARDS_OPTION + "=")]
    if len(option) != 2 or option[0] != SHARDS_OPTION or not option[1].isdigit():
        return None
    return int(option[1])


def main(argv: list[str]) -> int:
    """Parse the command line, load settings and run; returns the exit code."""
    shards = queue_shards_argument(argv)
    if shards is None and (len(argv) > 1 or (argv and argv[0] not in ("web", "worker", "dev", "migrate"))):
        print(USAGE, file=sys.stderr)
        return 2
    if argv == ["dev"]:
        from playground.supervisor import main as playground

        return playground()
    mode: Literal["web", "worker"] = "worker" if argv == ["worker"] else "web"
    # Importing the SDKs allocates about a million objects, and collecting them again and again while they load
    # costs a fifth of startup: the time a restarted dyno's unfinished tasks wait before they resume.
    gc.disable()
    try:
        from bot.core.errors import ConfigError, RedisUnavailable
        from bot.runtime.settings import load_settings

        try:
            settings = load_settings()
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        # after the settings: a settings error need not wait for the SDKs
        from bot.runtime.app import migrate, migrate_shards, serve
        from bot.runtime.logs import configure_logging, url_secrets
    finally:
        gc.freeze()  # what is loaded now lives as long as the process: keep it out of every later collection
        gc.enable()
    configure_logging(
        settings.log_level,
        settings.library_log_level,
        log_format=settings.log_format,
        dyno=settings.dyno,
        secrets=[secret for server in settings.mcp_server_list for secret in (server.token, *url_secrets(server.url))],
    )
    try:
        if shards is not None:
            return 0 if asyncio.run(migrate_shards(settings, shards)) else 1
        if argv == ["migrate"]:
            done = asyncio.run(migrate(settings))
            if not done:
                logging.getLogger("bot").error("old processes still hold threads: run it again once they are gone")
            return 0 if done else 1
        asyncio.run(serve(settings, mode))
    except RedisUnavailable as exc:
        logging.getLogger("bot").error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

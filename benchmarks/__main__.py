"""python -m benchmarks [PART ...] [--out DIR]: run the benchmark, print its table, write results and plots.

Parts, in order: ack, concurrency, recovery, stop, long, footprint, scaling, first_text, timers. With no part named,
every part runs and the results go to benchmarks/results/ (results.md, results.json, PNG plots) and into the README's
Performance section. With parts named, the table is printed only, unless --out names a folder to write to.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from benchmarks import (
    ack,
    concurrency,
    first_text,
    footprint,
    long_threads,
    plots,
    recovery,
    report,
    scaling,
    stopping,
    timers,
)
from benchmarks.figures import PartResult
from benchmarks.harness import Lab
from benchmarks.settings import BenchSettings
from tests.integration.harness import REPO_ROOT
from tests.integration.redis_server import PrivateRedis

RESULTS = REPO_ROOT / "benchmarks" / "results"
Part = Callable[[Lab], Awaitable[PartResult]]
PARTS: dict[str, Part] = {
    "ack": ack.run,
    "concurrency": concurrency.run,
    "recovery": recovery.run,
    "stop": stopping.run,
    "long": long_threads.run,
    "footprint": footprint.run,
    "scaling": scaling.run,
    "first_text": first_text.run,
    "timers": timers.run,
}


async def run_parts(names: list[str], settings: BenchSettings) -> list[PartResult]:
    """Run the named parts in order against one private redis-server, timing each."""
    results: list[PartResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        redis = PrivateRedis(Path(tmp) / "redis")
        redis.start()
        try:
            lab = Lab(redis.url, Path(tmp), settings)
            for name in names:
                print(f"[{name}] running…", flush=True)
                started = time.monotonic()
                result = await PARTS[name](lab)
                result.seconds = time.monotonic() - started
                print(f"[{name}] done in {result.seconds:.0f} s", flush=True)
                results.append(result)
        finally:
            redis.stop()
    return results


def write(
    folder: Path, header: str, info: dict[str, str], settings: BenchSettings, results: list[PartResult]
) -> list[str]:
    """results.md, results.json and the plots; the plots' file names."""
    folder.mkdir(parents=True, exist_ok=True)
    written = plots.draw(results, folder)
    (folder / "results.md").write_text(report.results_markdown(header, results, written))
    (folder / "results.json").write_text(report.results_json(info, settings, results) + "\n")
    return written


def parse(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("parts", nargs="*", metavar="PART", help=f"parts to run: {', '.join(PARTS)} (default: all)")
    parser.add_argument("--out", type=Path, help="folder for results.md, results.json and plots")
    args = parser.parse_args(argv)
    unknown = [name for name in args.parts if name not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; known: {', '.join(PARTS)}")
    return args


def main(argv: list[str]) -> int:
    """Run, print the table, write the results."""
    args = parse(argv)
    # Bots run as fresh interpreters, as deployed: the tests' fork server would share their memory and start time.
    os.environ["TEST_BOT_EXEC"] = "1"
    # The fakes log a traceback when a bot the benchmark killed on purpose leaves a response unwritten.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    settings = BenchSettings.from_env()
    full_run = not args.parts
    info = report.machine()
    started = time.monotonic()
    results = asyncio.run(run_parts(args.parts or list(PARTS), settings))
    total = time.monotonic() - started
    header = report.machine_line(info, results, total) + "\n\n" + report.settings_line(settings)
    print(f"\n{header}\n\n{report.table(results)}\n")
    out = args.out or (RESULTS if full_run else None)
    if out is not None:
        written = write(out, header, info, settings, results)
        print(f"results written to {out}/: results.md, results.json, {', '.join(written)}")
    if full_run:
        readme = REPO_ROOT / "README.md"
        if report.update_readme(readme, report.readme_section(header, results, written)):
            print("README.md: Performance section updated")
        else:
            print("README.md: no bench markers found; Performance section left as it is")
    print(f"total wall time: {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The results as Markdown (results.md, the README's Performance section) and JSON, with the machine they ran on.

A figure means little without the machine: CPU count and model, memory, Python and Redis versions, the load
average (other work on the machine shows there), the date and the commit are written beside every table.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess
from dataclasses import asdict
from pathlib import Path

from benchmarks.figures import PartResult, Row
from benchmarks.settings import BenchSettings
from tests.integration.harness import REPO_ROOT

README_BEGIN = "<!-- bench:begin: written by `make bench` (benchmarks/report.py); edits here are overwritten -->"
README_END = "<!-- bench:end -->"
PLOTS = {
    "ack_latency.png": "acknowledgement latency by rate",
    "concurrency.png": "wall time by threads at once",
    "long_threads.png": "tokens per request and cost over a long thread",
    "footprint.png": "memory",
    "scaling.png": "mentions per second by worker processes, and claim latency",
}


def _command(*args: str) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, check=True, cwd=REPO_ROOT).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024**2
    return 0.0


def machine() -> dict[str, str]:
    """What the run ran on, and when; call it at the start of the run (load average then)."""
    commit = _command("git", "rev-parse", "--short", "HEAD")
    dirty = _command("git", "status", "--porcelain", "--untracked-files=no")
    redis = _command("redis-server", "--version")
    return {
        "cpus": f"{os.cpu_count()}",
        "cpu_model": _cpu_model(),
        "memory": f"{_memory_gib():.1f} GiB",
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "redis": redis.split(" v=")[1].split()[0] if " v=" in redis else redis,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit + (" (with uncommitted changes)" if dirty not in ("", "unknown") else ""),
        "load_start": f"{os.getloadavg()[0]:.1f}",
    }


def machine_line(info: dict[str, str], results: list[PartResult], total: float) -> str:
    """One paragraph: the machine, the run's date and commit, and how long each part took."""
    parts = ", ".join(f"{r.name} {r.seconds:.0f} s" for r in results)
    return (
        f"**Machine**: {info['cpus']} CPUs ({info['cpu_model']}), {info['memory']} RAM, {info['os']}, "
        f"Python {info['python']}, redis-server {info['redis']}. **Run**: {info['date']}, commit {info['commit']}, "
        f"load average {info['load_start']} at start and {os.getloadavg()[0]:.1f} at the end; "
        f"total {total / 60:.1f} min ({parts})."
    )


def settings_line(settings: BenchSettings) -> str:
    """The sizes the run used."""
    model = settings.model
    rates = ", ".join(f"{r:g}" for r in settings.ack_rates)
    rounds = f"; {settings.ack_rounds} rounds at {max(settings.ack_rates):g}/s" if settings.ack_rounds > 1 else ""
    return (
        f"**Settings**: model latency L = {model.latency:g} s, then {model.answer_chars}-character answers "
        f"streamed {model.chunk_chars} characters every {model.chunk_delay * 1000:g} ms "
        f"({model.streaming_seconds:.2f} s); ack loads {rates}/s for {settings.ack_seconds:g} s each (at least "
        f"{settings.ack_min_count} mentions{rounds}) and {settings.ack_burst} at once; K = "
        f"{', '.join(str(k) for k in settings.concurrency)}; lease {settings.lease_seconds:g} s in recovery (the "
        "default 30 s elsewhere); "
        f"{settings.repeats} repeats of each recovery; {settings.turns} turns; scaling: "
        f"{settings.scaling_mentions} mentions by {', '.join(str(n) for n in settings.scaling_workers)} worker "
        f"processes, claim latency over {settings.claim_mentions}. Change them with BENCH_* variables "
        "(benchmarks/settings.py)."
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _row(part: str, row: Row) -> str:
    ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
    met = {True: "yes", False: "**no**", None: ""}[row.met]
    cells = [part, row.measure, row.bot, row.reference, ratio, row.target, met]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def table(results: list[PartResult]) -> str:
    """The summary table: every row of every part."""
    lines = [
        "| Part | Measure | Bot | Reference (same run) | Ratio | Target | Met |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [_row(result.name, row) for result in results for row in result.rows]
    return "\n".join(lines)


def plot_links(prefix: str, written: list[str]) -> str:
    """Markdown links to the plots that were written."""
    return " · ".join(f"[{PLOTS[name]}]({prefix}{name})" for name in PLOTS if name in written)


def results_markdown(header: str, results: list[PartResult], written: list[str]) -> str:
    """The whole of results.md."""
    notes = "\n".join(f"- **{r.name}** ({r.title}): " + " ".join(r.notes) for r in results if r.notes)
    images = "\n\n".join(f"![{PLOTS[name]}]({name})" for name in PLOTS if name in written)
    return (
        "# Benchmark results\n\n"
        "Written by `make bench` (`python -m benchmarks`). Every figure is measured beside its reference in the "
        "same run; ratios are bot / reference.\n\n"
        f"{header}\n\n{table(results)}\n\n## Notes\n\n{notes}\n\n## Plots\n\n{images}\n"
    )


def readme_section(header: str, results: list[PartResult], written: list[str]) -> str:
    """What goes between the README's markers."""
    links = plot_links("benchmarks/results/", written)
    return (
        f"{README_BEGIN}\n{header}\n\n{table(results)}\n\n"
        f"Plots: {links}. Notes and details: [benchmarks/results/results.md](benchmarks/results/results.md).\n"
        f"{README_END}"
    )


def update_readme(readme: Path, section: str) -> bool:
    """Replace the text between the README's markers; False when the markers are missing."""
    text = readme.read_text()
    pattern = re.compile(re.escape(README_BEGIN) + ".*?" + re.escape(README_END), re.DOTALL)
    if not pattern.search(text):
        return False
    readme.write_text(pattern.sub(lambda _: section, text))
    return True


def results_json(info: dict[str, str], settings: BenchSettings, results: list[PartResult]) -> str:
    """Everything measured, for anyone who wants to plot it differently."""
    data = {"machine": info, "settings": asdict(settings), "parts": [asdict(r) for r in results]}
    return json.dumps(data, indent=1, default=str)

"""PNG plots of a run, drawn from each part's series; a part that did not run draws nothing.

Figures are built with matplotlib's object API (`Figure`, not pyplot): no global state and no GUI backend,
so plots are written on a server without a display.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from benchmarks.figures import PartResult
from benchmarks.long_threads import cost, input_tokens

Series = dict[str, Any]
COLORS = {
    "floor": "tab:gray",
    "bot": "tab:red",
    "split": "tab:blue",
    "web": "tab:green",
    "naive": "tab:gray",
    "cached": "tab:olive",
    "standalone": "tab:red",
    "cluster": "tab:purple",
}


def _save(figure: Figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def ack_latency(series: Series, path: Path) -> None:
    """p50 and p99 acknowledgement latency of each setup, by load, on a log scale."""
    figure = Figure(figsize=(10, 4.5))
    axes = figure.subplots()
    loads = series["loads"]
    labels = [load["label"] for load in loads]
    for name, label in series["setups"].items():
        color = COLORS.get(name, "tab:green")
        axes.plot(labels, [load[name]["p99"] * 1000 for load in loads], "o-", color=color, label=f"{label}, p99")
        axes.plot(labels, [load[name]["p50"] * 1000 for load in loads], "o:", color=color, label=f"{label}, p50")
    axes.axhline(100, color="black", linewidth=0.8, linestyle="--", label="target p99 < 100 ms")
    axes.set_yscale("log")
    axes.set_ylabel("acknowledgement latency (ms)")
    axes.set_xlabel("load")
    axes.set_title("Acknowledgement latency by load")
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(figure, path)


def concurrency(series: Series, path: Path) -> None:
    """Wall time until all K threads are answered, beside L and the 2.5 L target."""
    figure = Figure(figsize=(7, 4.5))
    axes = figure.subplots()
    runs = series["runs"]
    ks = [run["k"] for run in runs]
    axes.plot(ks, [run["wall"] for run in runs], "o-", color=COLORS["bot"], label="bot: all answered")
    latency, answer, cap = series["latency"], series["latency"] + series["streaming"], series["max_concurrent"]
    bound = [-(-k // cap) * answer for k in ks]
    axes.plot(ks, bound, "x", color="black", label=f"model time: L + streaming, once per {cap} threads (the cap)")
    axes.axhline(latency, color="black", linewidth=0.8, label=f"L = {latency:g} s (model latency)")
    axes.axhline(2.5 * latency, color="black", linewidth=0.8, linestyle="--", label="target at K = 100: 2.5 L")
    axes.set_xscale("log")
    axes.set_xticks(ks, [str(k) for k in ks])
    axes.set_xlabel("threads mentioned at once (K)")
    axes.set_ylabel("seconds")
    axes.set_ylim(bottom=0)
    axes.set_title("Concurrency: time until every thread is answered")
    axes.legend(fontsize=8)
    _save(figure, path)


def _tokens(axes: Axes, series: Series) -> None:
    answers = [u for u in series["bot_usages"] if not u["summary"]]
    turns = range(1, len(answers) + 1)
    naive = [input_tokens(u) for u in series["naive_usages"]]
    axes.plot(turns, naive, color=COLORS["naive"], label="naive (with or without a cache breakpoint)")
    axes.plot(turns, [input_tokens(u) for u in answers], color=COLORS["bot"], label="bot")
    cached = [u["cache_read_input_tokens"] for u in answers]
    axes.fill_between(turns, cached, color=COLORS["bot"], alpha=0.25, label="bot: read from cache")
    axes.set_xlabel("turn")
    axes.set_ylabel("input tokens per request")
    axes.set_title("Input tokens per request")
    axes.legend(fontsize=8)


def _cost(axes: Axes, series: Series) -> None:
    usages = {"bot": series["bot_usages"], "naive": series["naive_usages"], "cached": series["naive_cached_usages"]}
    labels = {"bot": "bot", "naive": "naive", "cached": "naive with a cache breakpoint"}
    for name, calls in usages.items():
        running = list(itertools.accumulate(cost([call]) for call in calls))
        axes.plot(range(1, len(running) + 1), running, color=COLORS[name], label=labels[name])
    axes.set_xlabel("model call")
    axes.set_ylabel("US dollars, cumulative")
    axes.set_title("Estimated cost")
    axes.legend(fontsize=8)


def long_threads(series: Series, path: Path) -> None:
    """Tokens per request over the turns (bot vs naive) and the cumulative estimated cost."""
    figure = Figure(figsize=(11, 4.5))
    left, right = figure.subplots(1, 2)
    _tokens(left, series)
    _cost(right, series)
    _save(figure, path)


def footprint(series: Series, long: Series | None, path: Path) -> None:
    """Resident memory (floor, bot idle, bot peak) and, if the long thread ran, its Redis bytes over the turns."""
    figure = Figure(figsize=(11 if long else 6, 4.5))
    axes = figure.subplots(1, 2 if long else 1, squeeze=False)
    memory = axes[0][0]
    names = ["Bolt app\nthat only acks", "bot idle", "bot peak"]
    values = [series[key] / 1024 for key in ("floor_kib", "idle_kib", "peak_kib")]
    memory.bar(names, values, color=[COLORS["floor"], COLORS["bot"], COLORS["bot"]])
    memory.set_ylabel("resident memory (MiB)")
    memory.set_title("Resident memory")
    if long:
        redis = axes[0][1]
        for name in ("naive", "bot"):
            points = sorted((int(turn), size) for turn, size in long["bytes"][name].items())
            redis.plot([t for t, _ in points], [s / 1024 for _, s in points], "o-", color=COLORS[name], label=name)
        redis.set_xlabel("turn")
        redis.set_ylabel("KiB in Redis")
        redis.set_title("Redis memory of one long thread")
        redis.legend(fontsize=8)
    _save(figure, path)


def scaling(series: Series, path: Path) -> None:
    """Mentions per second by worker processes on each Redis setup, and each setup's claim latencies."""
    figure = Figure(figsize=(11, 4.5))
    rates, claims = figure.subplots(1, 2)
    workers = series["workers"]
    for name, label in (("standalone", "standalone Redis"), ("cluster", "Redis Cluster, 3 masters")):
        color = COLORS[name]
        rates.plot(workers, [series[name]["per_second"][str(n)] for n in workers], "o-", color=color, label=label)
        most = [series[name]["ceiling"][str(n)] for n in workers]
        rates.plot(workers, most, "x", color=color, markersize=9, label=f"{label}: CPU ceiling of that batch")
        latencies = sorted(value * 1000 for value in series[name]["claim_started"])
        shares = [(rank + 1) / len(latencies) for rank in range(len(latencies))]
        claims.step(latencies, shares, where="post", color=color, label=f"{label}: ack -> task started")
        model = sorted(value * 1000 for value in series[name]["claim_model"])
        claims.step(model, shares, where="post", color=color, linestyle=":", label=f"{label}: ack -> model request")
    one = series["standalone"]["per_second"][str(workers[0])] / workers[0]
    rates.plot(workers, [one * n for n in workers], "--", color="black", linewidth=0.8, label="linear from 1 worker")
    rates.axvline(series["cpus"], color="tab:gray", linewidth=0.8, linestyle=":", label="cores on this machine")
    rates.set_xticks(workers, [str(n) for n in workers])
    rates.set_xlabel("worker processes")
    rates.set_ylabel("mentions answered per second")
    rates.set_ylim(bottom=0)
    rates.set_title(f"Throughput, instant model ({series['mentions']} mentions at once)")
    rates.legend(fontsize=7, loc="lower right")
    claims.set_xscale("log")
    claims.set_xlabel("milliseconds after the acknowledgement (log scale)")
    claims.set_ylabel("share of mentions")
    claims.set_title("Claim latency on an idle system")
    claims.legend(fontsize=7, loc="lower right")
    _save(figure, path)


def draw(results: list[PartResult], folder: Path) -> list[str]:
    """Draw every plot whose part ran; the file names written."""
    by_name = {result.name: result.series for result in results}
    written: list[str] = []
    if "ack" in by_name:
        ack_latency(by_name["ack"], folder / "ack_latency.png")
        written.append("ack_latency.png")
    if "concurrency" in by_name:
        concurrency(by_name["concurrency"], folder / "concurrency.png")
        written.append("concurrency.png")
    if "long" in by_name:
        long_threads(by_name["long"], folder / "long_threads.png")
        written.append("long_threads.png")
    if "footprint" in by_name:
        footprint(by_name["footprint"], by_name.get("long"), folder / "footprint.png")
        written.append("footprint.png")
    if "scaling" in by_name:
        scaling(by_name["scaling"], folder / "scaling.png")
        written.append("scaling.png")
    return written

"""Part 1: how fast Slack gets its acknowledgement, at rising rates, beside a Bolt app that only acknowledges.

Slack retries an event it has not seen acknowledged within 3 s, so acknowledgement latency is the bot's first
duty. The floor (benchmarks/floor_app.py) is served the way the bot is, so the ratio shows what the bot adds to
what any Bolt app costs on this machine, in this run. Three setups of the bot are measured:
- the default, one web process that also answers (RUN_WORKERS_IN_WEB=true);
- a web process that only acknowledges beside a worker process on the same machine (RUN_WORKERS_IN_WEB=false
  and `python -m bot worker`), which competes with it for the CPU here;
- that web process alone, as on a web dyno whose workers run on other machines: its mentions are recorded
  and acknowledged, and nothing answers them.
Where the bot answers, the next load waits until every answer is posted. The setups use separate Redis
databases, so each one's workers only ever see its own mentions.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.figures import PartResult, Row, ms
from benchmarks.harness import Bench, Lab, with_database
from benchmarks.settings import BenchSettings
from benchmarks.stats import Latencies, ratio
from tests.integration.harness import BotProcess

Rounds = dict[str, list[Latencies]]
TARGET_RATIO = 1.5
TARGET_P99 = 0.100


@dataclass(frozen=True)
class Setup:
    """One app under load: where its events go and whether it answers them."""

    name: str
    label: str
    process: BotProcess
    answers: bool


def load_label(rate: float, count: int) -> str:
    """'200/s' or '100 at once'."""
    return f"{count} at once" if rate <= 0 else f"{rate:g}/s"


def spread(latencies: Latencies) -> str:
    """p50 / p99 / max in milliseconds."""
    return f"{ms(latencies.p50)} / {ms(latencies.p99)} / {ms(latencies.max)}"


async def start_setups(bench: Bench) -> list[Setup]:
    """The floor, the default bot, and the split bot (its worker warmed up by one answered mention)."""
    floor = await bench.start({"DYNO": "floor.1"}, module="benchmarks.floor_app")
    web = await bench.start({"DYNO": "web.1"})
    split_env = {"REDIS_URL": with_database(bench.redis_url, 1), "RUN_WORKERS_IN_WEB": "false"}
    split = await bench.start({"DYNO": "web.2", **split_env})
    await bench.start({"DYNO": "worker.1", **split_env}, args=("worker",), wait_ready=False)
    await bench.send(split, "C0WARMSPLIT", 1)
    await bench.answers.wait("C0WARMSPLIT", 1, timeout=60)  # the worker has started and answers
    alone_env = {"REDIS_URL": with_database(bench.redis_url, 2), "RUN_WORKERS_IN_WEB": "false"}
    alone = await bench.start({"DYNO": "web.3", **alone_env})
    return [
        Setup("floor", "Bolt app that only acks", floor, answers=False),
        Setup("bot", "bot, one process (default)", web, answers=True),
        Setup("split", "bot, web + worker process", split, answers=True),
        Setup("web", "bot, web process alone", alone, answers=False),
    ]


async def run(lab: Lab) -> PartResult:
    """Send each load to every setup in turn."""
    async with lab.session() as bench:
        return await measure(bench, lab.settings)


async def measure_load(bench: Bench, setups: list[Setup], index: int, rate: float, count: int, rounds: int) -> Rounds:
    """Send one load to every setup, `rounds` times; each setup's latencies, one summary per round."""
    measured: Rounds = {setup.name: [] for setup in setups}
    for round_ in range(rounds):
        # Rotate the order so that a machine that speeds up or slows down does not favour any setup.
        turn = (index + round_) % len(setups)
        for setup in setups[turn:] + setups[:turn]:
            channel = f"C0ACK{index}R{round_}{setup.name.upper()}"
            await bench.quiet()
            _, latencies = await bench.send(setup.process, channel, count, rate=rate, warm_up=True)
            measured[setup.name].append(Latencies.of(latencies))
            if setup.answers:
                # Let it answer everything (the warm-up mention too) before anything else is timed.
                await bench.answers.wait(channel, count + 1, timeout=120 + count * 0.2)
    return measured


def spread_of(rounds: list[Latencies]) -> str:
    """The combined spread, and each round's p99 when there were several."""
    text = spread(Latencies.median_of(rounds))
    if len(rounds) > 1:
        text += f" (p99 by round: {', '.join(f'{r.p99 * 1000:.0f}' for r in rounds)} ms)"
    return text


async def measure(bench: Bench, settings: BenchSettings) -> PartResult:
    """All apps run side by side for the whole part; each load goes to one after the other."""
    result = PartResult("ack", "Acknowledgement latency (p50 / p99 / max), bot vs a Bolt app that only acks")
    setups = await start_setups(bench)
    loads = [(rate, settings.ack_count(rate)) for rate in settings.ack_rates] + [(0.0, settings.ack_burst)]
    top_rate = max(settings.ack_rates)
    series: list[dict[str, object]] = []
    for i, (rate, count) in enumerate(loads):
        # The target's load is repeated: one hiccup of a shared machine should not decide it.
        rounds = settings.ack_rounds if rate == top_rate else 1
        measured = await measure_load(bench, setups, i, rate, count, rounds)
        floor = Latencies.median_of(measured["floor"])
        label = load_label(rate, count)
        where = f"at {label} (n={count}{f', {rounds} rounds' if rounds > 1 else ''})" if rate > 0 else label
        for setup in setups[1:]:
            bot = Latencies.median_of(measured[setup.name])
            p99_ratio = ratio(bot.p99, floor.p99)
            target, met = "", None
            if rate == top_rate:
                target = f"p99 ≤ {TARGET_RATIO:g}x floor and < {ms(TARGET_P99)}"
                met = p99_ratio is not None and p99_ratio <= TARGET_RATIO and bot.p99 < TARGET_P99
            reference = f"floor: {spread_of(measured['floor'])}"
            result.rows.append(
                Row(f"ack {where}: {setup.label}", spread_of(measured[setup.name]), reference, p99_ratio, target, met)
            )
        combined = {name: vars(Latencies.median_of(rounds)) for name, rounds in measured.items()}
        by_round = {name: [vars(r) for r in rounds] for name, rounds in measured.items()}
        series.append({"label": label, "rate": rate, "count": count, **combined, "rounds": by_round})
    result.series = {"loads": series, "setups": {setup.name: setup.label for setup in setups}}
    result.notes.append(
        "Ack: p50 / p99 / max; ratio: bot p99 / floor p99. Loads are open loop (a slow ack never delays the next "
        f"send), over pre-opened keep-alive connections, from a separate process. At {top_rate:g}/s each setup "
        f"gets {settings.ack_rounds} rounds, its order rotated; p50 and p99 are the medians of the rounds', "
        "max the largest."
    )
    return result

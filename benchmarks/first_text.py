"""Part: how soon an answer's first characters show in Slack, as the bot's time over the model's first token.

People wait for the first characters of an answer; the model's time to its first token is not the bot's to save,
so the figure with a target is what the bot adds after it: from the moment the model fake writes the answer's
first text delta to the moment the Slack emulator receives the first call that makes answer text visible. Two
bots run side by side, each with its own fakes and Redis database, and are mentioned in turn, one mention at a
time (each answered whole before the next), so that a machine that speeds up or slows down favours neither:
- native streaming (a workspace with agent features): the first chat.appendStream carrying a markdown_text chunk;
- the fallback (a workspace without them): the first chat.update showing the answer's text, the message the bot
  edits at most every 1.2 s (bot/tasks/live.py).
Both send the first text at once: the 1.2 s (chat.update) and 1.0 s (chat.appendStream, rate limited per workspace)
intervals only space the updates after it. The time from the mention's event post to those first characters, what
people see, is reported beside it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from benchmarks.figures import PartResult, Row, ms
from benchmarks.harness import BENCH_USER, Bench, Lab, answer_text, with_database
from benchmarks.settings import ModelSpeed
from benchmarks.stats import percentile
from tests.fakes import FakeAnthropic, SlackCall, wait_until
from tests.integration.harness import BotProcess

MENTIONS = 30  # measured mentions per way of showing an answer
WARM_UP = 1  # mentions per bot left out: a process's first answer loads what it needs
TARGET_OVERHEAD = 0.300
# A realistic streamed answer: Claude writes some 75-100 tokens a second, a few tokens (about 12 characters) to a
# text delta. The model's time to its first token (L) adds to what people see but not to the bot's share of it,
# which is reported apart: L is kept short to keep the part short.
SPEED = ModelSpeed(latency=0.2, chunk_delay=0.03, chunk_chars=12, answer_chars=240)
STREAM_METHODS = ("chat.startStream", "chat.appendStream", "chat.stopStream")
ANSWER_TIMEOUT = 30.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TimedAnthropic(FakeAnthropic):
    """The model fake, answering exactly as the plain one, that notes when each /v1/messages request arrives and
    when each streamed answer's first text delta is handed to the bot's connection."""

    def __init__(self) -> None:
        super().__init__()
        self.requested: list[float] = []  # time.monotonic() of each request's arrival
        self.first_text: list[float] = []  # time.monotonic() of each stream's first text delta, as it is sent

    def add_routes(self, app: web.Application) -> None:
        """The fake's routes, plus the two clocks (a middleware and aiohttp's response-prepare signal)."""
        super().add_routes(app)

        @web.middleware  # without it aiohttp takes the function for an old-style middleware factory
        async def note_request(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path == "/v1/messages":
                self.requested.append(time.monotonic())
            return await handler(request)

        app.middlewares.append(note_request)
        app.on_response_prepare.append(self._watch_stream)

    async def _watch_stream(self, request: web.Request, response: web.StreamResponse) -> None:
        """Wrap a streamed answer's write(): the fake writes one SSE event per call, so the first whose bytes hold a
        text_delta is the model's first token leaving for the bot."""
        if response.content_type != "text/event-stream":
            return
        write = response.write
        noted = False

        async def timed_write(data: bytes | bytearray | memoryview) -> None:
            nonlocal noted
            if not noted and b'"text_delta"' in bytes(data):
                # Noted before the bytes leave: the bot cannot have them earlier, so its time is never underestimated.
                noted = True
                self.first_text.append(time.monotonic())
            await write(data)

        # Only this response's write is wrapped; the fake's own code (and every other use of it) is untouched.
        response.write = timed_write  # type: ignore[method-assign]  # an instance attribute shadows the method


@dataclass(frozen=True)
class FirstText:
    """One mention's times, in seconds after its event was posted."""

    to_request: float  # the model request arrives at the model fake
    to_first_token: float  # the model fake has written the answer's first text delta
    to_visible: float  # the Slack emulator receives the first call that shows answer text

    @property
    def overhead(self) -> float:
        """What the bot adds between the model's first token and Slack showing it."""
        return self.to_visible - self.to_first_token

    @property
    def model_time(self) -> float:
        """The model's share of the wait: from its request to its first token."""
        return self.to_first_token - self.to_request

    @property
    def bot_time(self) -> float:
        """The bot's share of the wait: everything but the model's."""
        return self.to_visible - self.model_time


def streams_text(call: SlackCall, answer: str) -> bool:
    """A streaming call carrying the start of the answer as a markdown_text chunk."""
    chunks = call.args.get("chunks")
    if call.method not in STREAM_METHODS or not isinstance(chunks, list):
        return False
    texts = [c.get("text") for c in chunks if isinstance(c, dict) and c.get("type") == "markdown_text"]
    return any(isinstance(text, str) and text and answer.startswith(text) for text in texts)


def updates_text(call: SlackCall, answer: str) -> bool:
    """A chat.update whose text begins with the answer (the placeholder before it does not)."""
    shown = call.args.get("markdown_text") or call.args.get("text") or ""
    return call.method == "chat.update" and str(shown).startswith(answer[: SPEED.chunk_chars])


def working_cleared(call: SlackCall) -> bool:
    """The task's last Slack call: its session back to active, or the 👀 reaction taken off."""
    if call.method == "agents.sessions.setStatus":
        return call.args.get("status") == "active"
    return call.method == "reactions.remove"


@dataclass
class Way:
    """One way of showing an answer while it is written: its session, the bot using it, what was measured."""

    name: str
    label: str
    bench: Bench
    claude: TimedAnthropic
    shows_text: Callable[[SlackCall, str], bool]
    bot: BotProcess | None = None
    samples: list[FirstText] = field(default_factory=list)


def make_way(lab: Lab, name: str, label: str, *, agent_features: bool, database: int) -> Way:
    """A session whose Slack emulator has agent features or not, with the timed model fake in it."""
    bench = lab.session(SPEED, redis_url=with_database(lab.redis_url, database))
    claude = TimedAnthropic()
    bench.claude = claude  # before the session starts it: the session scripts and starts this one instead
    bench.slack.agent_features = agent_features
    return Way(name, label, bench, claude, streams_text if agent_features else updates_text)


def channel_calls(way: Way, channel: str, since: int) -> list[SlackCall]:
    """The Web API calls about `channel` received since the `since`-th."""
    calls = way.bench.slack.calls[since:]
    return [c for c in calls if channel in (c.args.get("channel"), c.args.get("channel_id"))]


async def measure_mention(way: Way, channel: str) -> FirstText:
    """Mention the bot in a new thread of `channel`, wait until the task is over, and time its first characters."""
    slack, claude, bot = way.bench.slack, way.claude, way.bot
    assert bot is not None, "the way's bot is not started"
    answer = answer_text(SPEED)
    calls, requests, deltas = len(slack.calls), len(claude.requested), len(claude.first_text)
    envelope = slack.post_user_message(channel, f"<@{slack.bot_user_id}> a question", user=BENCH_USER, mention=True)
    posted = time.monotonic()
    await bot.post_event(envelope)

    def finished() -> bool:
        return any(working_cleared(call) for call in channel_calls(way, channel, calls))

    await wait_until(finished, timeout=ANSWER_TIMEOUT, interval=0.01)
    [reply] = slack.bot_replies(channel, str(envelope["event"]["ts"]))
    if reply.get("text") != answer or len(claude.first_text) != deltas + 1:
        raise RuntimeError(f"{way.name}: the answer in {channel} is not the one model answer, whole")
    shown = [c.received for c in channel_calls(way, channel, calls) if way.shows_text(c, answer)]
    if not shown:
        raise RuntimeError(f"{way.name}: no call in {channel} showed the answer's text as {way.label} does")
    return FirstText(claude.requested[requests] - posted, claude.first_text[deltas] - posted, shown[0] - posted)


async def run(lab: Lab) -> PartResult:
    """Both bots started side by side, then mentioned in turn, who goes first alternating."""
    native = make_way(lab, "stream", "native streaming (chat.appendStream)", agent_features=True, database=0)
    fallback = make_way(lab, "update", "fallback (chat.update, 1.2 s throttle)", agent_features=False, database=1)
    # Both sessions empty Redis as they start, before either bot runs.
    async with native.bench, fallback.bench:
        native.bot, fallback.bot = await asyncio.gather(
            native.bench.start({"DYNO": "stream.1"}), fallback.bench.start({"DYNO": "update.1"})
        )
        for index in range(WARM_UP + MENTIONS):
            for way in (native, fallback) if index % 2 == 0 else (fallback, native):
                sample = await measure_mention(way, f"C0FIRST{way.name.upper()}{index:02d}")
                if index >= WARM_UP:
                    way.samples.append(sample)
    return summarize([native, fallback])


def spread(values: list[float]) -> str:
    """p50 / p95 / max in milliseconds."""
    return f"{ms(percentile(values, 50))} / {ms(percentile(values, 95))} / {ms(max(values))}"


def summarize(ways: list[Way]) -> PartResult:
    """Two rows per way: the overhead over the first token (with the target), and mention to first characters."""
    result = PartResult("first_text", "First visible characters of an answer: the bot's time over the model's")
    for way in ways:
        overheads = [s.overhead for s in way.samples]
        p95 = percentile(overheads, 95)
        first_token = [s.to_first_token for s in way.samples]
        result.rows.append(
            Row(
                f"first text shown after the model's first token, {way.label} (n={len(overheads)})",
                spread(overheads),
                f"mention → model's first token: {spread(first_token)}",
                target=f"p95 < {ms(TARGET_OVERHEAD)}",
                met=p95 < TARGET_OVERHEAD,
            )
        )
    for way in ways:
        visible = [s.to_visible for s in way.samples]
        result.rows.append(
            Row(
                f"mention → first text shown, {way.label} (n={len(visible)})",
                spread(visible),
                f"the model's share (request → first token): {spread([s.model_time for s in way.samples])}; "
                f"the bot's: {spread([s.bot_time for s in way.samples])}",
            )
        )
    result.series = {way.name: {"label": way.label, "samples": [vars(s) for s in way.samples]} for way in ways}
    result.notes.append(
        f"p50 / p95 / max over {MENTIONS} mentions per way (after {WARM_UP} left out), one at a time, each a new "
        "thread answered whole before the next; the two bots run side by side and take turns. Each answer is "
        f"{SPEED.answer_chars} characters streamed {SPEED.chunk_chars} at a time every "
        f"{SPEED.chunk_delay * 1000:g} ms after the model's L = {SPEED.latency:g} s (its first token comes one chunk "
        "delay after L). The model's first token: when the model fake hands the first text_delta event to the bot's "
        "connection. The first text shown: when the Slack emulator received the call (SlackCall.received), the first "
        "chat.appendStream with a markdown_text chunk or the first chat.update with the answer's text. Both are read "
        "on this process's time.monotonic(); the mention's time is just before its event is posted to the bot. Both "
        "ways send the first text as soon as it comes (the 1.2 s throttle of chat.update and the 1.0 s of "
        "chat.appendStream space only the updates after it), and the emulator answers a Web API call in about a "
        "millisecond: Slack's own time to take the call comes on top."
    )
    return result

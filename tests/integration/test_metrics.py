"""GET /metrics of the running bot: parsed by prometheus-client's own parser, its counts match the work done."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.runtime.settings import DEFAULT_MODEL
from tests.fakes import FakeAnthropic, FakeSlack, wait_until
from tests.integration.conftest import BotFactory
from tests.integration.harness import BotProcess

pytestmark = pytest.mark.integration
CHANNEL = "C0GENERAL"
TOKEN = "scrape-token-1"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def mention(slack: FakeSlack, text: str) -> dict[str, Any]:
    return slack.post_user_message(CHANNEL, f"<@{slack.bot_user_id}> {text}", user="U0ALICE", mention=True)


async def scrape(bot: BotProcess, token: str | None = TOKEN) -> tuple[int, str]:
    """GET /metrics, with the bearer token unless None; the status and the body."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(f"{bot.url}/metrics", headers=headers) as response:
        return response.status, await response.text()


async def samples(bot: BotProcess) -> Samples:
    """Every sample of a scrape, parsed by prometheus-client, by (name, labels without dyno); dyno checked."""
    status, text = await scrape(bot)
    assert status == 200
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = dict(sample.labels)
            assert labels.pop("dyno") == bot.env["DYNO"]
            found[(sample.name, frozenset(labels.items()))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def bot_texts(slack: FakeSlack) -> list[str]:
    return [str(m.get("text")) for m in slack.messages(CHANNEL) if m.get("bot_id")]


async def test_metrics_count_the_work_done(make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic) -> None:
    """Two mentions (one delivered twice by Slack) answered: /metrics, behind its token, counts two accepted
    mentions, one duplicate, two answers done, the model calls and tokens the API reported, and times the acks,
    first words and answers."""
    bot = make_bot(METRICS_TOKEN=TOKEN)
    await bot.start()
    assert (await scrape(bot, token=None))[0] == 401
    assert (await scrape(bot, token="wrong"))[0] == 401
    first = mention(slack, "how are you?")
    assert await bot.post_event(first) == 200
    assert await bot.post_event(first, retry_num=1, retry_reason="http_timeout") == 200
    assert await bot.post_event(mention(slack, "and what time is it?")) == 200
    await wait_until(lambda: sum("echo:" in text for text in bot_texts(slack)) == 2, timeout=15)

    async def both_done() -> Samples | None:
        found = await samples(bot)
        return found if value(found, "slack_agent_tasks_total", kind="answer", outcome="done") == 2 else None

    found = await wait_until(both_done, timeout=10)
    assert value(found, "slack_agent_mentions_total", outcome="accepted", reason="none") == 2
    assert value(found, "slack_agent_mentions_total", outcome="duplicate", reason="none") == 1
    assert value(found, "slack_agent_model_calls_total", model=DEFAULT_MODEL, outcome="ok") == len(claude.usages) == 2
    reported = {
        "input": sum(usage["input_tokens"] for usage in claude.usages),
        "output": sum(usage["output_tokens"] for usage in claude.usages),
        "cache_read": sum(usage.get("cache_read_input_tokens", 0) for usage in claude.usages),
        "cache_write": sum(usage.get("cache_creation_input_tokens", 0) for usage in claude.usages),
    }
    for kind, tokens in reported.items():
        assert value(found, "slack_agent_model_tokens_total", model=DEFAULT_MODEL, kind=kind) == tokens, kind
    assert value(found, "slack_agent_model_cost_usd_total", model=DEFAULT_MODEL) > 0
    assert value(found, "slack_agent_ack_seconds_count") == 3
    assert value(found, "slack_agent_first_text_seconds_count") == 2
    assert value(found, "slack_agent_answer_seconds_count") == 2
    assert value(found, "slack_agent_queue_waiting_threads") == 0
    assert value(found, "slack_agent_lease_takeovers_total") == 0
    assert value(found, "slack_agent_redis_errors_total", where="runner") == 0
    assert value(found, "process_resident_memory_bytes") > 0


async def test_each_process_serves_its_own_metrics(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """With a web process that only takes events and a worker that answers, each serves /metrics of its own: the
    web one counts the mention, the worker (on its PORT) the answer and the model call."""
    web = make_bot(RUN_WORKERS_IN_WEB="false", METRICS_TOKEN=TOKEN)
    await web.start()
    assert await web.post_event(mention(slack, "who answers this?")) == 200
    worker = make_bot("worker", DYNO="worker.1", METRICS_TOKEN=TOKEN)
    await worker.start()  # waits for its /healthz: served beside /metrics on its PORT
    await wait_until(lambda: any("echo:" in text for text in bot_texts(slack)), timeout=15)

    async def answered_in_worker() -> Samples | None:
        found = await samples(worker)
        return found if value(found, "slack_agent_tasks_total", kind="answer", outcome="done") == 1 else None

    in_worker = await wait_until(answered_in_worker, timeout=10)
    assert value(in_worker, "slack_agent_model_calls_total", model=DEFAULT_MODEL, outcome="ok") == 1
    assert value(in_worker, "slack_agent_mentions_total", outcome="accepted", reason="none") == 0
    in_web = await samples(web)
    assert value(in_web, "slack_agent_mentions_total", outcome="accepted", reason="none") == 1
    assert value(in_web, "slack_agent_tasks_total", kind="answer", outcome="done") == 0
    assert "serving /metrics and /healthz on port" in worker.output()
    assert await worker.stop() == 0


async def test_socket_mode_acks_are_timed(make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic) -> None:
    """In Socket Mode each envelope's acknowledgement is timed like an HTTP request's, and /metrics is served on
    PORT all the same."""
    bot = make_bot(SLACK_APP_TOKEN=slack.app_token, METRICS_TOKEN=TOKEN)
    bot.env.pop("SLACK_SIGNING_SECRET")  # Socket Mode needs none
    await bot.start()
    await wait_until(lambda: slack.socket_connected, timeout=10)
    await slack.wait_for_ack(await slack.send_socket_event(mention(slack, "hi over the socket")))
    await wait_until(lambda: any("echo:" in text for text in bot_texts(slack)), timeout=10)
    found = await samples(bot)
    assert value(found, "slack_agent_ack_seconds_count") == 1
    assert value(found, "slack_agent_mentions_total", outcome="accepted", reason="none") == 1

"""Long threads stay under the token budget (a rolling summary, folded from the oldest turns in bounded requests)
and are read from Slack by the pages needed, not whole."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from playground.payloads import format_ts
from playground.prompt_cache import request_tokens
from store.models import ThreadRef
from tests.fakes import FakeAnthropic, FakeSlack, Reply, slash_command_form, user_texts, wait_until
from tests.integration.conftest import BotFactory
from tests.integration.harness import BotProcess
from tests.integration.stored import SPACE, turns, window_text

pytestmark = pytest.mark.integration
CHANNEL = "C0LONG"
FACT = "FACT-ALPHA: the launch code is AZURE-7 and Dana owns the rollout."
FILLER = "The deployment log shows ordinary progress with nothing unusual to report at this step. " * 68


def is_summary_request(body: dict[str, Any]) -> bool:
    return "running summary" in " ".join(user_texts({"system": body.get("system", "")}))


def fake_summarizer(body: dict[str, Any]) -> Reply:
    """A faithful summarizer: keeps every FACT line and the range of turns it has seen."""
    text = " ".join(user_texts(body))
    facts = sorted(set(re.findall(r"FACT-\w+: [^\n<]*?\.", text)))
    turns = [int(n) for n in re.findall(r"turn (\d+):", text)]
    covered = f"Covers turns up to {max(turns)}." if turns else ""
    return Reply([{"type": "text", "text": "\n".join([*facts, covered])}])


def answering(body: dict[str, Any]) -> Reply:
    """Answers 'ok turn N'; every 7th turn first looks at the thread with read_thread."""
    if is_summary_request(body):
        return fake_summarizer(body)
    last = body["messages"][-1]
    if last["role"] == "user" and last["content"][0].get("type") == "tool_result":
        return Reply([{"type": "text", "text": "ok, I read the thread."}])
    [*_, turn] = re.findall(r"turn (\d+):", " ".join(user_texts({"messages": [last]})))
    if int(turn) % 7 == 0:
        tool_use = {"type": "tool_use", "id": f"toolu_{turn}", "name": "read_thread", "input": {"limit": 5}}
        return Reply([tool_use], stop_reason="tool_use")
    return Reply([{"type": "text", "text": f"ok turn {turn}"}])


async def run_thread(bot: BotProcess, slack: FakeSlack, turns: int) -> str:
    """Drive `turns` mentions of ~1,500 tokens each through one thread; returns its ts."""
    thread_ts: str | None = None
    for n in range(1, turns + 1):
        text = f"<@{slack.bot_user_id}> turn {n}: {FACT if n == 1 else ''} {FILLER}"
        envelope = slack.post_user_message(CHANNEL, text, user="U0ALICE", thread_ts=thread_ts, mention=True)
        thread_ts = thread_ts or envelope["event"]["ts"]
        await bot.post_event(envelope)
        await wait_until(
            lambda n=n, t=thread_ts: (
                len(slack.bot_replies(CHANNEL, t)) == n
                and "Thinking" not in str(slack.bot_replies(CHANNEL, t)[-1].get("text"))
            ),
            timeout=20,
        )
    assert thread_ts is not None
    return thread_ts


def new_message_tokens(body: dict[str, Any]) -> int:
    """Tokens of the request's newest user message (the mention being answered)."""
    user_messages = [m for m in body["messages"] if m["role"] == "user" and m["content"][0].get("type") == "text"]
    return request_tokens({"messages": [user_messages[-1]]})


def assert_tool_pairs_whole(body: dict[str, Any]) -> None:
    """Every tool_use is answered by a tool_result in the next message, and every tool_result has its tool_use."""
    messages = body["messages"]
    for index, message in enumerate(messages):
        uses = {b["id"] for b in message["content"] if isinstance(b, dict) and b.get("type") == "tool_use"}
        results = {
            b["tool_use_id"] for b in message["content"] if isinstance(b, dict) and b.get("type") == "tool_result"
        }
        if uses:
            following = messages[index + 1]["content"] if index + 1 < len(messages) else []
            assert uses == {b["tool_use_id"] for b in following if b.get("type") == "tool_result"} or index + 1 == len(
                messages
            )
        if results:
            previous = messages[index - 1]["content"]
            assert results <= {b["id"] for b in previous if isinstance(b, dict) and b.get("type") == "tool_use"}


async def test_sixty_turns_stay_under_budget_and_remember_turn_one(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """60 turns of ~1,500 tokens: every request fits the budget plus its new message, turn 1's fact survives."""
    claude.set_default(answering)
    bot = make_bot()
    await bot.start()
    thread_ts = await run_thread(bot, slack, 60)

    answers = [body for body in claude.requests if not is_summary_request(body)]
    summaries = [body for body in claude.requests if is_summary_request(body)]
    for body in answers:
        assert request_tokens(body) <= 24_000 + new_message_tokens(body), request_tokens(body)
        assert_tool_pairs_whole(body)
    last_first_call = next(b for b in answers if "turn 60:" in " ".join(user_texts({"messages": b["messages"][-1:]})))
    assert FACT in " ".join(user_texts({"system": last_first_call["system"]}))
    state = await redis.hgetall(SPACE.state(ThreadRef(slack.team_id, CHANNEL, thread_ts)))
    assert FACT in state["summary"]
    assert len(summaries) >= 3

    # Each fold sends the previous summary and the turns leaving the window: never a turn twice.
    seen: set[int] = set()
    previous_summary = "(none yet)"
    for body in summaries:
        prompt = " ".join(user_texts({"messages": body["messages"]}))
        assert f"<current_summary>\n{previous_summary}\n</current_summary>" in prompt
        folded = {int(n) for n in re.findall(r"turn (\d+):", prompt.split("</current_summary>")[1])}
        assert folded and not folded & seen
        assert folded == set(range(min(folded), max(folded) + 1))
        seen |= folded
        previous_summary = fake_summarizer(body).content[0]["text"]
    assert min(seen) == 1


async def test_a_failing_summarizer_never_stops_the_thread_nor_drops_a_turn(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """With every summary call failing, answers keep coming, requests stay within the budget (the oldest turns left
    out of view), and the window keeps every turn, over the budget but under its storage ceiling."""

    def broken_summaries(body: dict[str, Any]) -> Reply:
        if is_summary_request(body):
            return Reply([], status=500, error_type="api_error", error_message="summarizer down")
        return answering(body)

    claude.set_default(broken_summaries)
    bot = make_bot(CONTEXT_TOKEN_BUDGET="12000", SUMMARY_MAX_TOKENS="1000")
    await bot.start()
    thread_ts = await run_thread(bot, slack, 16)
    answers = [body for body in claude.requests if not is_summary_request(body)]
    for body in answers:
        assert request_tokens(body) <= 12_000 + new_message_tokens(body)
    assert "left out of view" in " ".join(user_texts(answers[-1]))
    ref = ThreadRef(slack.team_id, CHANNEL, thread_ts)

    async def finished() -> bool:  # the fold after the last answer is done too
        return await redis.hget(SPACE.state(ref), "turns") == "32" and await redis.llen(SPACE.inbox(ref)) == 0

    await wait_until(finished, timeout=20)
    assert await redis.hget(SPACE.state(ref), "summary") is None
    assert len(await turns(redis, ref)) == 32  # every turn kept: none dropped unsummarized
    summary_calls = [body for body in claude.requests if is_summary_request(body)]
    assert 0 < len(summary_calls) <= 2 * 16  # at most one attempt (two tries) per answer: no loop


async def test_a_fold_interrupted_by_a_crash_is_not_summarized_twice(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """Killed after the summary step is journaled, the restarted bot applies that summary without a new call."""
    claude.set_default(answering)
    small = {"CONTEXT_TOKEN_BUDGET": "8000", "SUMMARY_MAX_TOKENS": "1000"}
    bot = make_bot(BOT_CRASH_AT="summary.journaled", **small)
    await bot.start()
    thread_ts: str | None = None
    turn = 0
    while bot.process is not None and bot.process.returncode is None:
        turn += 1
        assert turn < 20, "no fold happened"
        text = f"<@{slack.bot_user_id}> turn {turn}: {FACT if turn == 1 else ''} {FILLER}"
        envelope = slack.post_user_message(CHANNEL, text, user="U0ALICE", thread_ts=thread_ts, mention=True)
        thread_ts = thread_ts or envelope["event"]["ts"]
        await bot.post_event(envelope)
        ref = ThreadRef(slack.team_id, CHANNEL, thread_ts)

        async def finished_or_dead(ref: ThreadRef = ref) -> bool:
            # The fold runs after the reply shows: wait for the task itself to finish (or for the crash).
            return bot.process.returncode is not None or await redis.llen(SPACE.inbox(ref)) == 0  # type: ignore[union-attr]

        await wait_until(finished_or_dead, timeout=20)
    assert thread_ts is not None
    summaries_before = sum(is_summary_request(body) for body in claude.requests)
    assert summaries_before == 1
    restarted = make_bot(**small)
    await restarted.start()
    ref = ThreadRef(slack.team_id, CHANNEL, thread_ts)
    await wait_until(lambda: redis.hget(SPACE.state(ref), "summary"), timeout=15)
    assert FACT in await redis.hget(SPACE.state(ref), "summary")
    assert sum(is_summary_request(body) for body in claude.requests) == 1
    assert len(slack.bot_replies(CHANNEL, thread_ts)) == turn


def seed_long_thread(slack: FakeSlack, replies: int) -> str:
    """A thread of `replies` replies, one every 3 seconds until a minute ago, nobody mentioned the bot in."""
    slack.add_user("U0BOB", "bob")
    start = int(time.time() * 1_000_000) - (replies + 20) * 3_000_000
    parent = slack.add_message(CHANNEL, "the thread's first message", user="U0BOB", ts=format_ts(start))
    for n in range(replies):
        slack.add_message(
            CHANNEL, f"reply {n}", user="U0BOB", ts=format_ts(start + (n + 1) * 3_000_000), thread_ts=parent
        )
    return parent


def tool_results(body: dict[str, Any]) -> list[str]:
    """The text of every tool_result in a request, in order."""
    return [
        str(block["content"])
        for message in body["messages"]
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "tool_result"
    ]


def paging_reader(body: dict[str, Any]) -> Reply:
    """Reads the thread's newest 50 messages, then the 50 before them (as the first result says), then answers."""
    results = tool_results(body)
    if len(results) == 2:
        return Reply([{"type": "text", "text": "read it"}])
    tool_input: dict[str, Any] = {"limit": 50}
    if results:  # where the first result says older messages begin (else its oldest line)
        tool_input["before_ts"] = [*re.findall(r"before_ts=([\d.]+)", results[0]), results[0].split()[0]][0]
    tool_use = {"type": "tool_use", "id": f"toolu_{len(results)}", "name": "read_thread", "input": tool_input}
    return Reply([tool_use], stop_reason="tool_use")


async def test_a_ten_thousand_reply_thread_is_read_with_a_few_calls(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """Joining a 10,000-reply thread and paging back through it with read_thread read exactly the pages asked for,
    in a few conversations.replies calls (reading it whole took 50 a read)."""
    parent = seed_long_thread(slack, 10_000)
    claude.set_default(paging_reader)
    await bot.post_event(
        slack.post_user_message(CHANNEL, f"<@{slack.bot_user_id}> sum up", thread_ts=parent, mention=True)
    )
    await wait_until(lambda: any("read it" in str(m.get("text")) for m in slack.bot_replies(CHANNEL, parent)), 20)
    stamps = [str(m["ts"]) for m in slack.thread(CHANNEL, parent)]
    first, second = (re.findall(r"^(\d+\.\d+) ", result, re.MULTILINE) for result in tool_results(claude.last_request))
    assert first == stamps[-50:] and second == stamps[-100:-50]
    assert len(slack.calls_to("conversations.replies")) <= 9  # three reads; reading the thread whole took 150
    late_join = " ".join(user_texts(claude.requests[0]))  # the 100 messages before the mention
    assert "reply 9900" in late_join and "reply 9899" not in late_join


async def test_agent_status_of_a_link_to_a_long_thread_reads_one_page(bot: BotProcess, slack: FakeSlack) -> None:
    """`/agent status <link>` for a 10,000-reply thread without an agent reads only the linked message's first page."""
    parent = seed_long_thread(slack, 10_000)
    link = f"<https://fake-team.slack.com/archives/{CHANNEL}/p{parent.replace('.', '')}>"
    form = slash_command_form(
        "/agent",
        f"status {link}",
        team_id=slack.team_id,
        channel_id=CHANNEL,
        user_id="U0ALICE",
        response_url=slack.response_url(),
    )
    status, body = await bot.post_command(form)
    assert status == 200 and "has no agent" in body
    assert len(slack.calls_to("conversations.replies")) == 1


NOTE_FILLER = "The build log goes on with routine lines that nobody will need to read again later. " * 420


def fact(n: int) -> str:
    return f"FACT-N{n}: the code word for note {n} is X{n}."


def fact_keeper(body: dict[str, Any]) -> Reply:
    """A faithful summarizer (it keeps every FACT line it is shown, in order) and a terse answerer."""
    if not is_summary_request(body):
        return Reply([{"type": "text", "text": "noted"}])
    facts = set(re.findall(r"FACT-N\d+: [^\n<]*?\.", " ".join(user_texts(body))))
    return Reply([{"type": "text", "text": "\n".join(sorted(facts, key=lambda f: int(f.split()[0][6:-1])))}])


async def test_a_hundred_long_notes_are_folded_in_bounded_requests_and_their_facts_kept(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """100 notes of 35,000 characters between two mentions: every request the model gets fits the budget, no turn
    is dropped unsummarized, and every note's fact reaches the summary or the window, and the next answer."""
    claude.set_default(fact_keeper)
    bot = make_bot()
    await bot.start()
    root = slack.post_user_message(CHANNEL, f"<@{slack.bot_user_id}> keep the notes", user="U0ALICE", mention=True)
    thread_ts = root["event"]["ts"]
    ref = ThreadRef(slack.team_id, CHANNEL, thread_ts)
    await bot.post_event(root)
    for n in range(1, 101):
        await bot.post_event(slack.post_user_message(CHANNEL, f"{fact(n)} {NOTE_FILLER}", thread_ts=thread_ts))

    async def remembered(turns: int) -> bool:
        return await redis.hget(SPACE.state(ref), "turns") == str(turns) and await redis.llen(SPACE.inbox(ref)) == 0

    await wait_until(lambda: remembered(102), timeout=60)
    question = slack.post_user_message(
        CHANNEL, f"<@{slack.bot_user_id}> the code words?", thread_ts=thread_ts, mention=True
    )
    await bot.post_event(question)
    await wait_until(lambda: len(slack.bot_replies(CHANNEL, thread_ts)) == 2, timeout=20)
    await wait_until(lambda: remembered(104), timeout=20)  # the fold after the answer is done too
    for body in claude.requests:
        bound = 24_000 + (0 if is_summary_request(body) else new_message_tokens(body))
        assert request_tokens(body) <= bound, request_tokens(body)
    summary = await redis.hget(SPACE.state(ref), "summary")
    window = await window_text(redis, ref)
    assert "dropped without a summary" not in summary
    assert "only the first 4,000 were read" in window  # a note is context: kept short, and says it was cut
    assert all(fact(n) in summary or fact(n) in window for n in range(1, 101))
    assert fact(1) in summary
    answer = next(b for b in claude.requests if "the code words?" in " ".join(user_texts(b)))
    assert all(fact(n) in " ".join(user_texts(answer)) for n in range(1, 101))


async def test_a_fold_too_big_for_one_request_goes_in_passages_and_resumes_after_a_crash(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """A 40,000-character question leaves an 8,000-token window in two summary requests, each within the budget;
    killed after the first is journaled, the restarted bot asks only for the second."""
    claude.set_default(answering)
    small = {"CONTEXT_TOKEN_BUDGET": "8000", "SUMMARY_MAX_TOKENS": "1000"}
    bot = make_bot(BOT_CRASH_AT="summary.part.journaled", **small)
    await bot.start()
    text = f"<@{slack.bot_user_id}> turn 1: {FACT} " + "the deployment log, pasted whole. " * 1_150
    envelope = slack.post_user_message(CHANNEL, text, user="U0ALICE", mention=True)
    thread_ts = envelope["event"]["ts"]
    await bot.post_event(envelope)
    assert bot.process is not None
    await wait_until(lambda: bot.process.returncode is not None, timeout=20)  # type: ignore[union-attr]
    restarted = make_bot(**small)
    await restarted.start()
    ref = ThreadRef(slack.team_id, CHANNEL, thread_ts)
    await wait_until(lambda: redis.hget(SPACE.state(ref), "summary"), timeout=15)
    summaries = [body for body in claude.requests if is_summary_request(body)]
    assert len(summaries) == 2 and all(request_tokens(body) <= 8_000 for body in summaries)
    first, second = (" ".join(user_texts({"messages": body["messages"]})) for body in summaries)
    assert FACT in first and "(continued)" in second and FACT in second.split("</current_summary>")[0]
    assert FACT in await redis.hget(SPACE.state(ref), "summary")
    assert len(slack.bot_replies(CHANNEL, thread_ts)) == 1


async def test_notes_during_a_summarizer_outage_are_kept_and_folded_when_it_is_back(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """Notes that take the window over the budget while the summarizer answers 529 are all kept, none dropped;
    once it is back, the next fold takes the backlog in requests within the budget, and every note's fact reaches
    the summary or the window, and the next answer."""
    overloaded = Reply([], status=529, error_type="overloaded_error", error_message="Overloaded", retry_after=0)
    claude.set_default(lambda body: overloaded if is_summary_request(body) else fact_keeper(body))
    bot = make_bot(CONTEXT_TOKEN_BUDGET="8000", SUMMARY_MAX_TOKENS="1000")
    await bot.start()
    root = slack.post_user_message(CHANNEL, f"<@{slack.bot_user_id}> keep the notes", user="U0ALICE", mention=True)
    thread_ts = root["event"]["ts"]
    ref = ThreadRef(slack.team_id, CHANNEL, thread_ts)
    await bot.post_event(root)

    async def remembered(turns: int) -> bool:
        return await redis.hget(SPACE.state(ref), "turns") == str(turns) and await redis.llen(SPACE.inbox(ref)) == 0

    await wait_until(lambda: remembered(2), timeout=20)
    for n in range(1, 13):
        await bot.post_event(slack.post_user_message(CHANNEL, f"{fact(n)} {NOTE_FILLER}", thread_ts=thread_ts))
    await wait_until(lambda: remembered(14), timeout=30)
    assert sum(is_summary_request(body) for body in claude.requests) > 0  # folds were tried, and failed
    assert len(await turns(redis, ref)) == 14 and await redis.hget(SPACE.state(ref), "summary") is None

    claude.set_default(fact_keeper)  # the summarizer is back: the next note's fold takes the backlog
    await bot.post_event(slack.post_user_message(CHANNEL, f"{fact(13)} {NOTE_FILLER}", thread_ts=thread_ts))
    await wait_until(lambda: remembered(15), timeout=20)
    summary = await redis.hget(SPACE.state(ref), "summary")
    window = await window_text(redis, ref)
    assert "dropped without a summary" not in summary and fact(1) in summary
    assert all(fact(n) in summary or fact(n) in window for n in range(1, 14))
    for body in claude.requests:
        if is_summary_request(body):
            assert request_tokens(body) <= 8_000
    await bot.post_event(
        slack.post_user_message(CHANNEL, f"<@{slack.bot_user_id}> the code words?", thread_ts=thread_ts, mention=True)
    )
    await wait_until(lambda: remembered(17), timeout=20)  # answered, and its turns recorded
    answer = next(b for b in claude.requests if "the code words?" in " ".join(user_texts(b)))
    assert all(fact(n) in " ".join(user_texts(answer)) for n in range(1, 14))

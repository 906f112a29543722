"""How answers appear in Slack: streamed into the one reply message, with a working indicator on the mention."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from redis.asyncio import Redis

from store.models import ThreadRef
from tests.fakes import FakeAnthropic, FakeSlack, Reply, wait_until
from tests.integration.conftest import BotFactory
from tests.integration.harness import BotProcess
from tests.integration.stored import task_field

pytestmark = pytest.mark.integration
CHANNEL = "C0GENERAL"
ANSWER = " ".join(f"Sentence number {n} of a long and thoughtful answer." for n in range(60))


def mention(slack: FakeSlack, text: str) -> dict[str, Any]:
    return slack.post_user_message(CHANNEL, f"<@{slack.bot_user_id}> {text}", user="U0ALICE", mention=True)


def slow_answer(text: str = ANSWER) -> Reply:
    """An answer that streams in over about four seconds."""
    return Reply([{"type": "text", "text": text}], "end_turn", chunk_size=40, chunk_delay=0.05)


def reactions(slack: FakeSlack, method: str, ts: str) -> list[str]:
    return [str(args.get("name")) for args in slack.calls_to(method) if args.get("timestamp") == ts]


async def test_an_answer_streams_into_its_one_message_and_the_indicator_comes_and_goes(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.enqueue(slow_answer())
    envelope = mention(slack, "tell me everything")
    await bot.post_event(envelope)
    thread_ts = str(envelope["event"]["ts"])
    await wait_until(lambda: [m for m in slack.bot_replies(CHANNEL, thread_ts) if m.get("text") == ANSWER], timeout=20)
    [reply] = slack.bot_replies(CHANNEL, thread_ts)  # one message, updated in place
    shown = [str(update["text"]) for update in slack.updates if update.get("ts") == reply["ts"]]
    previews = [text.removesuffix(" ✍️") for text in shown[:-1]]
    assert len(previews) >= 2, shown  # the answer appeared progressively...
    assert all(ANSWER.startswith(text) for text in previews)  # ...each time a longer start of it...
    assert [len(p) for p in previews] == sorted(len(p) for p in previews)
    assert shown[-1] == ANSWER  # ...and ends as the whole answer, with no marker left
    assert reactions(slack, "reactions.add", thread_ts) == ["eyes"]
    await wait_until(lambda: reactions(slack, "reactions.remove", thread_ts) == ["eyes"], timeout=5)


async def test_the_indicator_is_cleared_when_the_answer_fails(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.reply_error(401, "authentication_error", "invalid x-api-key")
    envelope = mention(slack, "hello")
    await bot.post_event(envelope)
    thread_ts = str(envelope["event"]["ts"])
    await wait_until(lambda: reactions(slack, "reactions.remove", thread_ts), timeout=10)
    assert "ANTHROPIC_API_KEY" in str(slack.bot_replies(CHANNEL, thread_ts)[0].get("text"))


async def test_a_crash_mid_stream_finishes_the_same_message(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.enqueue(Reply([{"type": "text", "text": ANSWER}], "end_turn", chunk_size=20, chunk_delay=0.2))
    claude.reply_text("the whole answer, at last")
    bot = make_bot()
    await bot.start()
    envelope = mention(slack, "tell me everything")
    await bot.post_event(envelope)
    thread_ts = str(envelope["event"]["ts"])
    await wait_until(lambda: any(str(u.get("text")).endswith("✍️") for u in slack.updates), timeout=15)
    await bot.kill()  # mid-stream: part of the answer is showing
    restarted = make_bot()
    await restarted.start()
    await wait_until(
        lambda: [m.get("text") for m in slack.bot_replies(CHANNEL, thread_ts)] == ["the whole answer, at last"],
        timeout=20,
    )
    await asyncio.sleep(0.5)
    assert len(slack.bot_replies(CHANNEL, thread_ts)) == 1


async def test_a_20000_character_answer_arrives_whole_in_order_and_once_even_after_a_crash(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    answer = long_answer()
    claude.reply_text(answer)
    bot = make_bot(BOT_CRASH_AT="reply.posted")  # killed after every part is in Slack, before the task is done
    await bot.start()
    envelope = mention(slack, "write it all down")
    await bot.post_event(envelope)
    thread_ts = str(envelope["event"]["ts"])
    assert bot.process is not None
    await asyncio.wait_for(bot.process.wait(), 20)
    restarted = make_bot()
    await restarted.start()
    ref = ThreadRef(slack.team_id, CHANNEL, thread_ts)
    await wait_until(lambda: _status_is(redis, ref, str(envelope["event_id"]), "done"), timeout=20)
    await asyncio.sleep(1.0)  # time for any duplicate to appear, if there were to be one
    texts = [str(m.get("text")) for m in slack.bot_replies(CHANNEL, thread_ts)]
    assert len(texts) >= 2 and all(len(text) <= 12_000 for text in texts)
    rejoined = "\n".join(texts).replace("\n```\n```sql\n", "\n")
    assert [line for line in rejoined.split("\n") if line.strip()] == [
        line for line in answer.split("\n") if line.strip()
    ]


async def _status_is(redis: Redis, ref: ThreadRef, task_id: str, status: str) -> bool:
    return await task_field(redis, ref, task_id, "status") == status


def long_answer() -> str:
    """About 20,000 characters of Markdown: prose, nested lists and code, one block longer than a message."""
    sections = []
    for n in range(12):
        sections.append(f"## Part {n}\n\n" + " ".join(f"Prose sentence {n}.{i} about the design." for i in range(25)))
        sections.append("- a point\n  - a nested point with `inline code`\n- another point")
        sections.append("```python\n" + "\n".join(f"value_{n}_{i} = compute({i})" for i in range(12)) + "\n```")
    sections.insert(
        6, "```sql\n" + "\n".join(f"SELECT {i} FROM big_table WHERE id = {i};" for i in range(400)) + "\n```"
    )
    return "\n\n".join(sections)


# The smallest valid PNG: one transparent pixel.
PIXEL_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


async def test_files_in_the_thread_reach_the_model(bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic) -> None:
    """A text file and a snippet are read into the turn, an image goes as an image block, a PDF is named and skipped;
    a text file shared later in the thread (not a question) is remembered as context."""
    notes = slack.add_file("notes.txt", b"The launch code word is PELICAN.", mimetype="text/plain")
    snippet = slack.add_file("query.sql", b"SELECT 42;", mimetype="text/plain", mode="snippet")
    chart = slack.add_file("chart.png", PIXEL_PNG, mimetype="image/png")
    report = slack.add_file("report.pdf", b"%PDF-1.4 not read", mimetype="application/pdf")
    envelope = slack.post_user_message(
        CHANNEL,
        f"<@{slack.bot_user_id}> what do these say?",
        user="U0ALICE",
        mention=True,
        files=[notes, snippet, chart, report],
    )
    await bot.post_event(envelope)
    thread_ts = str(envelope["event"]["ts"])
    await wait_until(lambda: [m for m in slack.bot_replies(CHANNEL, thread_ts) if "echo" in str(m.get("text"))])
    [question] = [m for m in claude.requests[0]["messages"] if m["role"] == "user"]
    blocks = question["content"]
    images = [block for block in blocks if block["type"] == "image"]
    assert images == [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PIXEL_PNG).decode()},
        }
    ]
    text = "\n".join(block.get("text", "") for block in blocks)
    assert "PELICAN" in text and "SELECT 42;" in text and "[Image chart.png attached.]" in text
    assert "report.pdf (application/pdf) skipped" in text and "not read" not in text
    assert {download.file_id for download in slack.downloads} == {notes["id"], snippet["id"], chart["id"]}
    assert all(download.authorized for download in slack.downloads)  # with the bot token, or Slack sends a login page

    later = slack.add_file("later.txt", b"Remember: the meeting moved to Thursday.", mimetype="text/plain")
    shared = slack.post_user_message(CHANNEL, "here is the update", user="U0ALICE", thread_ts=thread_ts, files=[later])
    await bot.post_event(shared)
    await wait_until(lambda: len({d.file_id for d in slack.downloads}) == 4, timeout=10)
    await bot.post_event(
        slack.post_user_message(
            CHANNEL, f"<@{slack.bot_user_id}> when is the meeting?", user="U0ALICE", thread_ts=thread_ts, mention=True
        )
    )
    await wait_until(lambda: len(claude.requests) == 2, timeout=10)
    assert "moved to Thursday" in json.dumps(claude.requests[1])
    assert "base64" not in json.dumps(claude.requests[1]["messages"][:-1])  # history keeps images by name only


MARKDOWN = """## Plan

1. First step
   - a nested point with `inline code`
   - another, with a [link](https://example.com/a_b?x=1&y=2)
2. Second step: **bold**, _italic_, ~~struck~~

```python
print("a `backtick` inside code")
```

| Option | Cost | Notes |
|---|---:|---|
| A | $1 | fast |
| B | $2 | *careful* |

> A quote, and a line that ends with two backticks ``"""


async def test_markdown_goes_to_slack_as_written_for_slack_to_render(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """No hand-made conversion: Slack renders standard Markdown given as a `markdown` block (lists, code, links,
    tables), so the final message carries Claude's Markdown unchanged, and the feedback buttons under it."""
    claude.reply_text(MARKDOWN)
    envelope = mention(slack, "plan it")
    await bot.post_event(envelope)
    thread_ts = str(envelope["event"]["ts"])
    await wait_until(lambda: [m for m in slack.bot_replies(CHANNEL, thread_ts) if m.get("text") == MARKDOWN])
    [reply] = slack.bot_replies(CHANNEL, thread_ts)
    markdown, buttons = reply["blocks"]
    assert markdown == {"type": "markdown", "text": MARKDOWN}
    assert buttons["type"] == "context_actions"
    assert [element["type"] for element in buttons["elements"]] == ["feedback_buttons"]

"""Block Kit views of `/agent`: a channel's agents, one agent in detail, the channel reset's confirmation."""

from __future__ import annotations

import time
from typing import Any

from bot.tasks.status import ago, describe_usage
from handlers.links import thread_label
from store.feedback import FeedbackCounts, ThreadFeedback
from store.models import AgentState, ThreadRef, Usage
from store.threads import ChannelCounts, CurrentTask

Block = dict[str, Any]
SUMMARY_EXCERPT_CHARS = 280
# The buttons of the channel-wide reset's confirmation; their value is the channel they were offered for.
CONFIRM_CHANNEL_RESET = "agent_reset_channel_confirm"
CANCEL_CHANNEL_RESET = "agent_reset_channel_cancel"


def channel_overview(
    channel_id: str,
    team_domain: str,
    counts: ChannelCounts,
    recent: list[tuple[ThreadRef, AgentState]],
    usage: Usage,
    queue_depth: int,
    workers: list[str],
    *,
    channel_feedback: FeedbackCounts,
    team_feedback: FeedbackCounts,
) -> list[Block]:
    """`/agent status` in a channel: counts, the most recent agents, the queue, the workers and the feedback."""
    worker_line = (
        f"{len(workers)} alive ({', '.join(workers[:5])}{'…' if len(workers) > 5 else ''})"
        if workers
        else ":warning: none alive: tasks wait until a worker starts"
    )
    blocks: list[Block] = [
        _section(
            f"*Agents in <#{channel_id}>:* {counts.agents} · {counts.working} working · {counts.queued} queued · "
            f"{counts.failing} failing\n*Queue:* {queue_depth} thread(s) of this workspace waiting or in progress · "
            f"*Workers:* {worker_line}\n*Channel usage:* {describe_usage(usage)}\n"
            f"*Feedback:* this channel {describe_feedback(channel_feedback)} · "
            f"the workspace {describe_feedback(team_feedback)}"
        )
    ]
    if recent:
        blocks.append({"type": "divider"})
    for ref, state in recent:
        blocks.append(
            _section(
                f"{thread_label(team_domain, ref)} · *{state.status}*\n{state.turns} turns · "
                f"{state.usage.total_input_tokens + state.usage.output_tokens:,} tokens · "
                f"about ${state.usage.cost_usd:,.4f} · active {ago(state.updated_at)}"
                + (" · :warning: last task failed" if state.last_error else "")
            )
        )
    blocks.append(_context("`/agent status <thread link>` shows one agent · `/agent reset <thread link>` clears one"))
    return blocks


def thread_detail(
    ref: ThreadRef, team_domain: str, state: AgentState, current: CurrentTask | None, feedback: ThreadFeedback
) -> list[Block]:
    """`/agent status <link>`: one agent in detail, with the answers people gave a thumbs down."""
    if current is None:
        task_now = "none"
    else:
        step = f", {current.steps} step(s) done" + (f", last: {current.last_step}" if current.last_step else "")
        task_now = f"{current.task.kind.value} ({current.task.status.value}, attempt {current.task.attempts}{step})"
    summary = state.summary
    fields = [
        ("Status", state.status),
        ("Task now", task_now),
        ("Tasks", f"{state.tasks_done} done, {state.tasks_stopped} stopped, {state.tasks_failed} failed"),
        ("Turns in the window", f"{state.turns - state.summarized_turns} ({state.summarized_turns} summarized)"),
        ("Summary", f"{len(summary):,} characters (about {len(summary) // 4:,} tokens)" if summary else "none yet"),
        ("Usage", describe_usage(state.usage)),
        ("Feedback", describe_feedback(feedback.counts)),
        ("Created", _when(state.created_at)),
        ("Last active", ago(state.updated_at)),
    ]
    blocks: list[Block] = [
        _section(f"*Agent of {thread_label(team_domain, ref)}*"),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in fields]},
    ]
    if summary:
        excerpt = summary[:SUMMARY_EXCERPT_CHARS] + ("…" if len(summary) > SUMMARY_EXCERPT_CHARS else "")
        blocks.append(_section("*Summary so far:*\n>" + excerpt.replace("\n", "\n>")))
    if state.last_error:
        blocks.append(_section(f":warning: *Last task failed:* {state.last_error}"))
    if feedback.down_voted:
        blocks.append(_section(_down_voted(team_domain, ref, feedback)))
    return blocks


def describe_feedback(counts: FeedbackCounts) -> str:
    """Thumbs up and down and the share of thumbs up, on one line."""
    if counts.rate is None:
        return "no votes yet"
    # Rounded down, so that an answer anyone disliked never shows as 100%.
    return f":+1: {counts.up:,} · :-1: {counts.down:,} ({int(counts.rate * 100)}% positive)"


def _down_voted(team_domain: str, ref: ThreadRef, feedback: ThreadFeedback) -> str:
    """The thumbs-down answers as links, newest first (at most 10 lines of about 200 characters: within the 3,000
    of a section)."""
    lines = [
        f"• {_answer_label(team_domain, ref, answer.answer_ts)} · {answer.down} :-1:" for answer in feedback.down_voted
    ]
    if feedback.more_down_voted:
        lines.append(f"…and {feedback.more_down_voted} earlier one(s)")
    return "*Answers given a :-1:* (most recent first)\n" + "\n".join(lines)


def _answer_label(team_domain: str, ref: ThreadRef, answer_ts: str) -> str:
    """An answer as a link to it in its thread (a reply's link names its thread), named by when it was posted."""
    posted = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(answer_ts)))
    if not team_domain:
        return f"Answer of {posted}"
    link = f"https://{team_domain}.slack.com/archives/{ref.channel_id}/p{answer_ts.replace('.', '')}"
    if answer_ts != ref.thread_ts:
        link += f"?thread_ts={ref.thread_ts}&amp;cid={ref.channel_id}"  # & escaped, as in all mrkdwn text
    return f"<{link}|Answer of {posted}>"


def _when(timestamp: float) -> str:
    """A date Slack shows in the reader's own time zone (the text after | is the fallback)."""
    fallback = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))
    return f"<!date^{int(timestamp)}^{{date_short_pretty}} {{time}}|{fallback}>"


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def channel_reset_question(channel_id: str, question: str) -> list[Block]:
    """The question, with a button that resets every agent of the channel and one that cancels."""
    buttons = {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": CONFIRM_CHANNEL_RESET,
                "text": {"type": "plain_text", "text": "Reset them all"},
                "style": "danger",
                "value": channel_id,
            },
            {
                "type": "button",
                "action_id": CANCEL_CHANNEL_RESET,
                "text": {"type": "plain_text", "text": "Cancel"},
                "value": channel_id,
            },
        ],
    }
    return [_section(question), buttons]

"""Folding older turns into the rolling summary: previous summary + evicted turns -> new summary.

Only the turns leaving the window are sent, never the whole thread again, so a fold costs the same on turn
600 as on turn 60 (bot/agent/compaction.py cuts them into passages, so that each request stays within a bound). The
instructions ask for names, identifiers, numbers, decisions and open questions word for word, because those are
what a later question needs and what a loose paraphrase loses.
"""

from __future__ import annotations

from bot.agent.client import ClaudeClient
from bot.agent.messages import render
from store.models import Turn, Usage

SUMMARY_INSTRUCTIONS = """You keep the running summary of a Slack thread for the assistant that works in it. \
You get the current summary and the turns that are now leaving the assistant's view; write the new summary, \
which replaces the current one.

Rules:
- Keep every name, user mention (<@U...>), identifier, number, date, URL, decision and open question exactly \
as written: copy them, do not paraphrase them.
- Keep what the people asked for, what was answered, and what is still open or was promised.
- Drop greetings, repetition and chatter. Prefer short bullet points grouped by topic.
- Write only the summary itself, at most {max_words} words."""


def render_turn(turn: Turn) -> str:
    """A turn as the summarizer reads it: one speaker-labelled paragraph."""
    return ("assistant: " if turn.role == "assistant" else "") + render(turn)


class Summarizer:
    """Asks the summary model for a new summary."""

    def __init__(self, claude: ClaudeClient, *, model: str, max_tokens: int) -> None:
        self._claude = claude
        self._model = model
        self._max_tokens = max_tokens

    @property
    def instructions(self) -> str:
        """The system prompt of every summary request."""
        return SUMMARY_INSTRUCTIONS.format(max_words=int(self._max_tokens * 0.7))

    @staticmethod
    def prompt(previous: str, passage: str) -> str:
        """The user message of a summary request: the current summary and the turns leaving view."""
        return (
            f"<current_summary>\n{previous or '(none yet)'}\n</current_summary>\n\n"
            f"<turns_leaving_view>\n{passage}\n</turns_leaving_view>\n\nWrite the new summary."
        )

    async def fold(self, previous: str, passage: str) -> tuple[str, Usage]:
        """The new summary of `previous` and the rendered turns in `passage`, and what it cost; raises ModelError
        if the model cannot be had."""
        step = await self._claude.step(
            self.instructions,
            [{"role": "user", "content": self.prompt(previous, passage)}],
            model=self._model,
            max_tokens=self._max_tokens,
        )
        text = "".join(block.get("text", "") for block in step.content if block.get("type") == "text").strip()
        return text or previous, step.usage

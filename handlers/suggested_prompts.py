"""The suggested prompts pinned to the top of the app's Messages tab, and the format of SUGGESTED_PROMPTS.

SUGGESTED_PROMPTS is a JSON list of at most MAX_PROMPTS prompts, each either {"title": ..., "message": ...} (the
button's label, and what clicking it sends) or a plain string (both at once); `[]` shows none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# Slack shows "up to four" (assistant.threads.setSuggestedPrompts). It documents no lengths: these keep a title to
# a button's label (Block Kit's button text takes 75) and a message to a question someone would type.
MAX_PROMPTS = 4
MAX_TITLE_CHARS = 75
MAX_MESSAGE_CHARS = 2_000
PROMPTS_HEADING = "Try asking"

DEFAULT_SUGGESTED_PROMPTS = json.dumps(
    [
        {
            "title": "Draft a message",
            "message": "Help me write a clear, friendly Slack message. Ask me what it is about and who will read it.",
        },
        {
            "title": "Summarize a long text",
            "message": "I'm going to paste a long text: summarize it in five short bullet points.",
        },
        {
            "title": "Explain a concept",
            "message": "Explain a technical idea to me simply, with one example. Ask me which idea first.",
        },
        {
            "title": "Brainstorm ideas",
            "message": "Help me brainstorm ideas. Ask me about the goal first, then give me ten varied ones.",
        },
    ]
)


@dataclass(frozen=True)
class SuggestedPrompt:
    """One prompt of the Messages tab: its label, and the message clicking it sends."""

    title: str
    message: str

    def as_slack(self) -> dict[str, str]:
        """The prompt as assistant.threads.setSuggestedPrompts takes it."""
        return {"title": self.title, "message": self.message}


def parse_suggested_prompts(raw: str) -> tuple[SuggestedPrompt, ...]:
    """SUGGESTED_PROMPTS as prompts; ValueError, saying what is wrong, for anything else."""
    try:
        items = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(items, list):
        raise ValueError('a JSON list of {"title": ..., "message": ...} objects or strings, or [] for none')
    if len(items) > MAX_PROMPTS:
        raise ValueError(f"at most {MAX_PROMPTS} prompts (Slack shows no more), not {len(items)}")
    return tuple(_prompt(number, item) for number, item in enumerate(items, start=1))


def _prompt(number: int, item: object) -> SuggestedPrompt:
    if isinstance(item, str):
        item = {"title": _cut(item.strip(), MAX_TITLE_CHARS), "message": item}
    if not isinstance(item, dict) or set(item) != {"title", "message"}:
        raise ValueError(f'prompt {number}: a string or an object with exactly "title" and "message"')
    title, message = item["title"], item["message"]
    if not isinstance(title, str) or not isinstance(message, str) or not title.strip() or not message.strip():
        raise ValueError(f"prompt {number}: its title and message must be text, not blank")
    if len(title) > MAX_TITLE_CHARS or len(message) > MAX_MESSAGE_CHARS:
        raise ValueError(
            f"prompt {number}: a title is at most {MAX_TITLE_CHARS} characters, a message {MAX_MESSAGE_CHARS}"
        )
    return SuggestedPrompt(title.strip(), message.strip())


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"

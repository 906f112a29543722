"""The session title taken from a thread's first question."""

from __future__ import annotations

from bot.tasks.session_title import title_from_question
from store.titles import MAX_TITLE_CHARS


def test_the_title_is_the_first_line_with_words() -> None:
    """Blank lines are skipped, later lines left out and runs of spaces collapsed."""
    assert title_from_question("\n  \n How do I   rotate\tkeys?\nMore detail here.") == "How do I rotate keys?"


def test_slack_markup_becomes_plain_text() -> None:
    """Mentions, channels, special mentions, links and escaped characters read as a person sees them."""
    text = "Ask <@U0BOB> in <#C0GEN|general> <!here> about <https://x.test/a|the doc> &amp; <https://x.test/b> &lt;3"
    assert title_from_question(text) == "Ask @U0BOB in #general @here about the doc & https://x.test/b <3"


def test_a_long_question_is_cut_to_what_slack_keeps() -> None:
    """A first line past 200 characters is cut to 200, ending in an ellipsis."""
    title = title_from_question("word " * 100)
    assert len(title) == MAX_TITLE_CHARS and title.endswith("…")


def test_a_question_without_words_has_no_title() -> None:
    """A file shared with no text gives "" (no rename), not a blank title Slack would refuse."""
    assert title_from_question(" \n\t") == ""

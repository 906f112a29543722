"""Context assembly from a thread's turns."""

from __future__ import annotations

from bot.agent.messages import CONVERSATION_START, build_messages, strip_mention, turns_from_thread
from bot.core.ports import ThreadMessage
from store.models import Turn


def test_consecutive_speakers_are_merged_and_labelled() -> None:
    """Several people in a row become one user message, each line saying who spoke."""
    turns = [
        Turn("user", "hello", user_id="U1", user_name="alice"),
        Turn("user", "and me", user_id="U2"),
        Turn("assistant", "hi both"),
        Turn("user", "thanks", user_id="U1", user_name="alice"),
    ]
    assert build_messages(turns) == [
        {"role": "user", "content": "alice (<@U1>): hello\n\n<@U2>: and me"},
        {"role": "assistant", "content": "hi both"},
        {"role": "user", "content": "alice (<@U1>): thanks"},
    ]


def test_history_that_starts_with_the_bot_gets_a_user_opening() -> None:
    """The Messages API wants a user message first; a thread that starts with the bot gets a neutral opener."""
    messages = build_messages([Turn("assistant", "earlier answer"), Turn("user", "q", user_id="U1")])
    assert messages[0] == {"role": "user", "content": CONVERSATION_START}
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]


def test_strip_mention_removes_only_the_bot() -> None:
    """The bot's own mention goes; other people's mentions stay."""
    assert strip_mention("<@U0BOT> ask <@U1> about it", "U0BOT") == "ask <@U1> about it"


def test_thread_messages_before_the_mention_become_turns() -> None:
    """Earlier human messages become user turns, the bot's own become its turns, other bots and later ones are left."""
    messages = [
        ThreadMessage("1.000001", "the parent", "U1", from_this_bot=False, from_other_bot=False),
        ThreadMessage("1.000002", "an earlier answer", "U0BOT", from_this_bot=True, from_other_bot=False),
        ThreadMessage("1.000003", "a deploy bot says hi", None, from_this_bot=False, from_other_bot=True),
        ThreadMessage("1.000004", "<@U0BOT> the mention itself", "U2", from_this_bot=False, from_other_bot=False),
    ]
    turns = turns_from_thread(messages, before_ts="1.000004", bot_user_id="U0BOT", names={"U1": "alice"})
    assert turns == [
        Turn("user", "the parent", user_id="U1", user_name="alice", ts="1.000001"),
        Turn("assistant", "an earlier answer", ts="1.000002"),
    ]


def test_a_thread_read_after_a_reset_starts_after_the_reset_note() -> None:
    """What was said before the agent was reset stays forgotten when the thread is read back."""
    messages = [
        ThreadMessage("1.000001", "<@U0BOT> the old question", "U1", from_this_bot=False, from_other_bot=False),
        ThreadMessage("1.000002", "the old answer", "U0BOT", from_this_bot=True, from_other_bot=False),
        ThreadMessage("1.000003", "reset note", "U0BOT", from_this_bot=True, from_other_bot=False, reset_at=1.0000025),
        ThreadMessage("1.000004", "said after the reset", "U2", from_this_bot=False, from_other_bot=False),
    ]
    turns = turns_from_thread(messages, before_ts="1.000005", bot_user_id="U0BOT", names={})
    assert turns == [Turn("user", "said after the reset", user_id="U2", ts="1.000004")]

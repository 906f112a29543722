"""The playground's offline stand-in model: deterministic, honest about being offline, streams slowly."""

from __future__ import annotations

from playground.offline_model import OFFLINE_NOTE, offline_responder


def request(*messages: tuple[str, str], system: str = "You are a helpful assistant.") -> dict[str, object]:
    return {"system": system, "messages": [{"role": role, "content": text} for role, text in messages]}


def text_of(body: dict[str, object]) -> str:
    reply = offline_responder(body)
    [block] = reply.content
    return str(block["text"])


def test_it_answers_the_latest_message_without_the_speaker_prefix_and_says_it_is_offline() -> None:
    body = request(("user", "you (<@U0YOU>): what is the capital of France?"))
    answer = text_of(body)
    assert OFFLINE_NOTE in answer
    assert "“what is the capital of France?”" in answer and "<@U0YOU>" not in answer
    assert "first thing I have been asked" in answer
    assert text_of(body) == answer, "the same request gets the same answer"


def test_it_counts_the_earlier_answers_it_was_given() -> None:
    body = request(
        ("user", "you (<@U0YOU>): one"),
        ("assistant", "first"),
        ("user", "you (<@U0YOU>): two"),
        ("assistant", "second"),
        ("user", "you (<@U0YOU>): three"),
    )
    assert "I have 2 earlier answers of this thread in view." in text_of(body)


def test_the_bots_own_state_note_is_not_taken_for_the_question() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "you (<@U0YOU>): resume me"},
                    {"type": "text", "text": "[Agent state, not from the user: this task has resumed.]"},
                ],
            }
        ]
    }
    assert "“resume me”" in text_of(body)


def test_summary_requests_get_a_summary_of_what_was_said() -> None:
    body = request(
        ("user", "you (<@U0YOU>): the launch code is AZURE-7"),
        system="You keep the running summary of a Slack thread.",
    )
    summary = text_of(body)
    assert summary.startswith("(offline summary)") and "AZURE-7" in summary


def test_answers_stream_slowly_enough_to_watch() -> None:
    reply = offline_responder(request(("user", "hi")))
    assert reply.chunk_delay > 0 and reply.chunk_size < 10


def test_a_request_for_something_long_gets_a_long_answer() -> None:
    """Asked for a long answer, the stand-in writes paragraphs enough to take half a minute to stream."""
    short = text_of(request(("user", "you (<@U0YOU>): hi")))
    long = text_of(request(("user", "you (<@U0YOU>): write me a long story")))
    assert long.startswith(short.split("\n\n")[0]) and "Paragraph 12 of 12" in long
    reply = offline_responder(request(("user", "you (<@U0YOU>): a detailed answer please")))
    streamed_seconds = len(str(reply.content[0]["text"])) / reply.chunk_size * reply.chunk_delay
    assert 20 < streamed_seconds < 60

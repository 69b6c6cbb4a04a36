"""A response that ends inside a multi-byte character keeps its last bytes, as U+FFFD, in its last
event and in the history; none of its text is lost or changed."""
import time

from tokint_local.client import Client
from tokint_local.engine import generate
from tokint_local.events import GenerationRequest, TokenEvent
from tokint_local.history import list_generations, show_generation
from tokint_local.textstream import Utf8Stream

PROMPTS = ["hello there", "the cat sat on the mat", "write a story about a robot", "x", "is it on or at?"]


def cut_inside_a_character(model, token_ids) -> int | None:
    """The length at which these tokens end inside a multi-byte character, if some length does."""
    stream = Utf8Stream()
    for n, token in enumerate(token_ids, 1):
        stream.feed(model.piece(token))
        if stream.pending:
            return n
    return None


def base_response(pair, prompt, max_tokens):
    events = list(generate(pair, GenerationRequest(prompt=prompt, mode="base", max_tokens=max_tokens)))
    return [e for e in events if isinstance(e, TokenEvent)], events[-1]


def a_cut(pair):
    for prompt in PROMPTS:
        tokens, _ = base_response(pair, prompt, 200)
        n = cut_inside_a_character(pair.base, [t.token_id for t in tokens])
        if n is not None:
            return prompt, n
    raise AssertionError("no response ends inside a character at any length; this test would prove nothing")


def test_the_last_event_carries_the_cut_character_as_a_replacement(tiny_pair):
    prompt, n = a_cut(tiny_pair)
    tokens, summary = base_response(tiny_pair, prompt, n)
    assert len(tokens) == summary.n_tokens == n and summary.finish_reason == "length"
    raw = b"".join(tiny_pair.base.piece(t.token_id) for t in tokens)
    assert "".join(t.text for t in tokens) == raw.decode("utf-8", "replace")
    assert tokens[-1].text.endswith("\ufffd")


def test_the_history_keeps_it_too(tiny_pair, daemon, tokint_home):
    prompt, n = a_cut(tiny_pair)
    with Client(daemon.address) as client:
        stream = client.generate(prompt, mode="base", max_tokens=n)
        events = [e for e in stream if isinstance(e, TokenEvent)]
    assert events[-1].text.endswith("\ufffd")
    deadline = time.monotonic() + 10
    while not ((tokint_home / "history.sqlite").exists() and list_generations() and list_generations()[0]["state"] == "done"):
        assert time.monotonic() < deadline, "the generation was not recorded"
        time.sleep(0.05)
    stored = show_generation(stream.id)["tokens"]
    assert [t["text"] for t in stored] == [e.text for e in events]

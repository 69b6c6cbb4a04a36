"""Thinking models: the response's thinking segment is marked on every token (channel), switched on
and off by the template (enable_thinking), kept out of the next turn as the template expects, and
takeovers in it are counted apart from those in the answer.

The models are scripted bigram models (gguf_factory.scripted_weights) with <think> and </think>
tokens: after the generation prompt's newline they write ``<think>hm</think>\\n\\nOK`` and stop; after
a generation prompt that closed the segment, ``OK``. The reasoning model agrees on every token but is
unsure after ``<think>`` and after ``O``, so with threshold 1 it takes over exactly there: once in the
thinking, once in the answer.
"""
import pytest

from conftest import DaemonProcess
from gguf_factory import CHAT_TEMPLATE, write_scripted_pair
from tokint_local.client import Client
from tokint_local.config import load_models
from tokint_local.engine import generate, prepare_prompt
from tokint_local.events import GenerationRequest, Summary, TokenEvent
from tokint_local.pair import open_pair
from tokint_local.prompt import format_conversation
from tokint_local.events import ChatMessage
from tokint_local.thinking import ANSWER, EITHER, THINKING, ChannelMarker, markers_of, split_message

BASE_SCRIPT = {"Ċ": {"<think>": 10}, "<think>": {"h": 10}, "h": {"m": 10}, "m": {"</think>": 10},
               "</think>": {"ĊĊ": 10}, "ĊĊ": {"O": 10}, "O": {"K": 10}}
REASONING_SCRIPT = {**BASE_SCRIPT, "<think>": {"h": 10, "x": 9}, "O": {"K": 10, "Q": 9}}

# Qwen3's way (written for this test): earlier assistant turns lose their thinking, enable_thinking=false
# closes an empty segment in the generation prompt.
QWEN3_LIKE = (
    "{%- for m in messages %}"
    "{%- if m.role == 'assistant' %}"
    "{%- set content = m.content %}"
    "{%- if '</think>' in content %}{%- set content = content.split('</think>')[-1].lstrip('\\n') %}{%- endif %}"
    "{{- '<|im_start|>assistant\\n' + content + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}")
# The R1 distills' way: the generation prompt opens the segment, earlier turns keep what follows </think>.
R1_LIKE = (
    "{%- for m in messages %}{%- set content = m.content %}"
    "{%- if m.role == 'assistant' and '</think>' in content %}{%- set content = content.split('</think>')[-1] %}{%- endif %}"
    "{{- '<|im_start|>' + m.role + '\\n' + content + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n<think>' }}{%- endif %}")
TEMPLATES = {"qwen3like": QWEN3_LIKE, "r1like": R1_LIKE, "plain": CHAT_TEMPLATE}
THOUGHT = "<think>hm</think>\n\nOK"


@pytest.fixture(scope="module")
def thinking_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("thinking")
    text = ""
    for name, template in TEMPLATES.items():
        base, reasoning = write_scripted_pair(folder, BASE_SCRIPT, REASONING_SCRIPT, template, name)
        text += (f'[pairs.{name}]\nbase = {{ path = "{base}", n_ctx = 256, n_threads = 1 }}\n'
                 f'reasoning = {{ path = "{reasoning}", n_ctx = 256, n_threads = 1 }}\n\n')
    path = folder / "models.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def pairs(thinking_models):
    models = load_models(thinking_models)
    loaded = {name: open_pair(models.pair(name)) for name in TEMPLATES}
    yield loaded
    for pair in loaded.values():
        pair.close()


def run(pair, messages, **params):
    params.setdefault("threshold", 1.0)
    events = list(generate(pair, GenerationRequest(messages=messages, max_tokens=20, **params)))
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    assert isinstance(events[-1], Summary)
    return [(e.text, e.channel, e.source) for e in tokens], events[-1]


def user(text):
    return {"role": "user", "content": text}


# -- the stream ------------------------------------------------------------------------------------

def test_thinking_on_marks_the_segment_and_counts_takeovers_apart(pairs):
    tokens, summary = run(pairs["qwen3like"], [user("hi")])
    assert "".join(t for t, _, _ in tokens) == THOUGHT
    assert [(t, c) for t, c, _ in tokens] == [
        ("<think>", THINKING), ("h", THINKING), ("m", THINKING), ("</think>", THINKING),
        ("\n\n", ANSWER), ("O", ANSWER), ("K", ANSWER), ("", ANSWER)]
    assert [t for t, _, source in tokens if source == "reasoning"] == ["h", "K"]
    assert summary.tokens_by_channel == {"thinking": 4, "answer": 4}
    assert summary.takeovers_by_channel == {"thinking": 1, "answer": 1} and summary.n_takeovers == 2


def test_enable_thinking_false_switches_the_segment_off(pairs):
    tokens, summary = run(pairs["qwen3like"], [user("hi")], chat_template_kwargs={"enable_thinking": False})
    assert [(t, c) for t, c, _ in tokens] == [("O", ANSWER), ("K", ANSWER), ("", ANSWER)]
    assert summary.tokens_by_channel == {"thinking": 0, "answer": 3}
    assert summary.takeovers_by_channel == {"thinking": 0, "answer": 1}


def test_a_generation_prompt_that_opens_the_segment_starts_the_response_in_it(pairs):
    tokens, summary = run(pairs["r1like"], [user("hi")])
    assert [(t, c) for t, c, _ in tokens] == [
        ("h", THINKING), ("m", THINKING), ("</think>", THINKING), ("\n\n", ANSWER), ("O", ANSWER), ("K", ANSWER), ("", ANSWER)]


def test_a_template_that_names_no_markers_gets_the_usual_ones(pairs):
    tokens, _ = run(pairs["plain"], [user("hi")])
    assert [c for _, c, _ in tokens] == [THINKING] * 4 + [ANSWER] * 4


# -- the next turn ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["qwen3like", "plain", "r1like"])
def test_the_thinking_is_kept_out_of_the_next_turn(pairs, name):
    pair = pairs[name]
    first, _ = run(pair, [user("hi")])
    answer = "".join(t for t, _, _ in first)
    assert "hm</think>" in answer
    conversation = [user("hi"), {"role": "assistant", "content": answer}, user("again")]
    text = "".join(t for t, _ in format_conversation([ChatMessage(**m) for m in conversation], pair.base.chat_template,
                                                     "", "", False).pieces)
    assert "hm" not in text and "OK<|im_end|>" in text
    second, summary = run(pair, conversation)
    assert "".join(t for t, _, _ in second) == answer  # the same script, the same channels
    assert summary.cached_tokens["base"] > 0


def test_the_template_gets_the_segment_with_its_markers_and_whitespace():
    """A template that handles thinking sees the message as written; one that does not, only the answer."""
    shows = "{% for m in messages %}[{{ m.content }}]{% endfor %}"
    said = [ChatMessage("user", "q"), ChatMessage("assistant", " <think>\n a plan \n</think>\n\nthe answer"), ChatMessage("user", "r")]
    handles = shows + "{# looks for </think> #}"
    seen = format_conversation(said, handles, "", "", False)
    assert seen.text == "[q][ <think>\n a plan \n</think>\n\nthe answer][r]"
    assert ("a plan", False) in seen.pieces and ("the answer", False) in seen.pieces  # the text stays text
    assert (" \n</think>\n\n", True) in seen.pieces  # the markers are the template's markup
    assert format_conversation(said, shows, "", "", False).text == "[q][the answer][r]"


def test_typed_markers_in_a_user_message_are_not_a_segment():
    said = [ChatMessage("user", "<think>x</think>"), ChatMessage("assistant", "fine"), ChatMessage("user", "ok")]
    assert format_conversation(said, QWEN3_LIKE, "", "", False).text.count("<think>x</think>") == 1


# -- the pieces ------------------------------------------------------------------------------------

def event(text, position=0):
    return TokenEvent(position, 0, text, "base", None, None, None, 0.0)


def channels(marker, texts):
    out = []
    for i, text in enumerate(texts):
        out += [(e.text, e.channel) for e in marker.push(event(text, i))]
    return out + [(e.text, e.channel) for e in marker.drain()]


def test_channel_marker_across_token_boundaries():
    markers = ("<think>", "</think>")
    assert channels(ChannelMarker(markers), ["\n", "<th", "ink>", "plan", "</th", "ink", ">\n", "yes"]) == [
        ("\n", THINKING), ("<th", THINKING), ("ink>", THINKING), ("plan", THINKING), ("</th", THINKING),
        ("ink", THINKING), (">\n", THINKING), ("yes", ANSWER)]
    assert channels(ChannelMarker(markers), ["<th", "e end"]) == [("<th", ANSWER), ("e end", ANSWER)]
    assert channels(ChannelMarker(markers), ["<th"]) == [("<th", ANSWER)]  # ended before it was decided
    assert channels(ChannelMarker(markers), ["<think>", "never closed"]) == [("<think>", THINKING), ("never closed", THINKING)]
    assert channels(ChannelMarker(markers, THINKING), ["a", "</think>", "b"]) == [("a", THINKING), ("</think>", THINKING), ("b", ANSWER)]
    assert channels(ChannelMarker(markers, ANSWER), ["<think>", "b"]) == [("<think>", ANSWER), ("b", ANSWER)]
    assert channels(ChannelMarker(markers), ["Hi", "<think>"]) == [("Hi", ANSWER), ("<think>", ANSWER)]


def test_markers_and_splitting():
    assert markers_of("{{ '</think>' }}") == ("<think>", "</think>")
    assert markers_of("{{ '<|end_of_thought|>' }}") == ("<|begin_of_thought|>", "<|end_of_thought|>")
    assert markers_of(None) == ("<think>", "</think>")
    markers = ("<think>", "</think>")
    parts = split_message("\n<think>\nplan\n</think>\n\nanswer", markers, False)
    assert (parts.before, parts.open, parts.think_pad, parts.thinking, parts.answer_pad, parts.answer) == (
        "\n", "<think>", ("\n", "\n"), "plan", "\n\n", "answer")
    assert split_message("plan</think>answer", markers, True).answer == "answer"
    assert split_message("plan</think>answer", markers, False) is None
    assert split_message("<think>cut off", markers, False) is None


# -- through the daemon ----------------------------------------------------------------------------

def test_the_channel_reaches_clients_and_thinking_switches_per_request(thinking_models, daemon_address):
    d = DaemonProcess(thinking_models, daemon_address)
    try:
        with Client(daemon_address) as client:
            events = list(client.chat([user("hi")], "qwen3like", threshold=1.0))
            tokens = [e for e in events if isinstance(e, TokenEvent)]
            assert [e.channel for e in tokens] == [THINKING] * 4 + [ANSWER] * 4
            assert events[-1].takeovers_by_channel == {"thinking": 1, "answer": 1}
            off = list(client.chat([user("hi")], "qwen3like", chat_template_kwargs={"enable_thinking": False}))
            assert {e.channel for e in off if isinstance(e, TokenEvent)} == {ANSWER}
    finally:
        d.stop()


# -- the command line ------------------------------------------------------------------------------

def test_the_command_line_shows_thinking_apart(thinking_models):
    import io
    import json
    import subprocess
    import sys
    from pathlib import Path

    from tokint_local.render import TextPrinter

    done = subprocess.run([sys.executable, "-m", "tokint_local.cli", "generate", "--local", "--models", str(thinking_models),
                           "--pair", "qwen3like", "--threshold", "1", "--json", "hi"],
                          capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["channel"] for e in lines if e["type"] == "token"] == [THINKING] * 4 + [ANSWER] * 4
    assert lines[-1]["takeovers_by_channel"] == {"thinking": 1, "answer": 1}
    out, err = io.StringIO(), io.StringIO()
    printer = TextPrinter(out, err, color=True)
    for e in lines:
        printer(TokenEvent.from_wire(e) if e["type"] == "token" else Summary.from_wire(e))
    assert out.getvalue().startswith(f"{TextPrinter.THINKING}<think>{TextPrinter.RESET}{TextPrinter.THINKING_TAKEOVER}h")
    assert f"O{TextPrinter.TAKEOVER}K{TextPrinter.RESET}" in out.getvalue()  # the answer's takeover as ever
    assert "2 takeovers at 1, 6 (1 in 4 thinking tokens, 1 in the answer)" in err.getvalue()

"""The OpenAI-compatible HTTP API, driven by real clients: the official ``openai`` package (sync and
async, streamed and whole), ``curl`` for the raw event stream, and the ``llm`` command-line tool
configured with an OpenAI-compatible model entry. Each answer is checked against the same request
through the ZeroMQ client, on the same daemon.

Errors and limits are in test_http_errors.py; disconnects, a worker crash and a shutdown under an
HTTP request in test_http_interruptions.py; keys and addresses in test_http_security.py."""
from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys

import openai
import pytest

from conftest import REAL_BASE, REAL_MISSING, REAL_REASONING, DaemonProcess, free_port
from tokint_local.client import Client
from tokint_local.events import Summary, TokenEvent
from tokint_local.history import show_generation

HELLO = [{"role": "user", "content": "Hello there"}]


def through_zmq(daemon, prompt, **params) -> tuple[str, list[TokenEvent], Summary]:
    with Client(daemon.address, timeout=60) as c:
        events = [e for e in c.generate(prompt, **params) if isinstance(e, (TokenEvent, Summary))]
    tokens = events[:-1]
    return "".join(e.text for e in tokens), tokens, events[-1]


# -- the models ----------------------------------------------------------------------------
def test_models_lists_every_pair_in_each_mode(oai):
    listed = {m.id: m.to_dict()["tokint"] for m in oai.models.list()}
    assert {"tiny", "tiny:base", "tiny:reasoning", "tiny-long", "tiny-long:reasoning"} <= set(listed)
    assert listed["tiny"] == {"pair": "tiny", "mode": "intervene", "default": True}
    assert listed["tiny-long:base"] == {"pair": "tiny-long", "mode": "base", "default": False}
    assert oai.models.retrieve("tiny:reasoning").to_dict()["tokint"]["mode"] == "reasoning"
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("tiny:sideways")


# -- whole and streamed responses ----------------------------------------------------------
def test_a_whole_chat_response_is_the_generation_with_its_provenance(http_daemon, oai):
    r = oai.chat.completions.create(model="tiny", messages=HELLO, max_tokens=12)
    text, tokens, summary = through_zmq(http_daemon, "Hello there", pair="tiny", max_tokens=12)
    assert r.object == "chat.completion" and r.model == "tiny"
    assert r.choices[0].message.role == "assistant" and r.choices[0].message.content == text
    assert r.choices[0].finish_reason == "length"
    ext = r.to_dict()["tokint"]
    assert [(t["position"], t["token_id"], t["source"]) for t in ext["tokens"]] == [
        (e.position, e.token_id, e.source) for e in tokens]
    assert [t["divergence"] for t in ext["tokens"]] == pytest.approx([e.divergence for e in tokens])
    assert ext["pair"] == "tiny" and ext["mode"] == "intervene" and r.id == f"chatcmpl-{ext['id']}"
    s = ext["summary"]
    assert s["takeover_positions"] == list(summary.takeover_positions) and s["n_takeovers"] == summary.n_takeovers
    assert s["delegated_share"] == pytest.approx(summary.n_takeovers / 12) and s["finish_reason"] == "length"
    usage = r.usage.to_dict()
    assert usage["prompt_tokens"] == summary.prompt_tokens["base"] and usage["completion_tokens"] == 12
    assert usage["total_tokens"] == usage["prompt_tokens"] + 12
    assert usage["prompt_tokens_by_model"] == summary.prompt_tokens == {"base": usage["prompt_tokens"], "reasoning": usage["prompt_tokens"]}
    # the same history as ZeroMQ clients: `tokint history ID` finds it
    record = show_generation(ext["id"], http_daemon.home / "history.sqlite")
    assert record["pair"] == "tiny" and record["finish_reason"] == "length" and len(record["tokens"]) == 12


def test_a_streamed_chat_response_matches_the_whole_one(oai):
    whole = oai.chat.completions.create(model="tiny", messages=HELLO, max_tokens=16)
    chunks = list(oai.chat.completions.create(model="tiny", messages=HELLO, max_tokens=16, stream=True,
                                              stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    streamed = [t for c in chunks for t in c.to_dict()["tokint"]["tokens"]]
    assert [t["position"] for t in streamed] == list(range(16))
    assert [t["source"] for t in streamed] == [t["source"] for t in whole.to_dict()["tokint"]["tokens"]]
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == "length"
    summary = finals[0].to_dict()["tokint"]["summary"]
    assert summary["takeover_positions"] == whole.to_dict()["tokint"]["summary"]["takeover_positions"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == whole.usage.total_tokens
    assert all(c.id == chunks[0].id and c.object == "chat.completion.chunk" for c in chunks)


async def test_the_async_client_streams_and_waits_its_turn(http_daemon):
    async with openai.AsyncOpenAI(base_url=http_daemon.http_url + "/v1", api_key="unused", max_retries=0) as client:
        async def streamed(prompt):
            stream = await client.chat.completions.create(model="tiny:base", messages=[{"role": "user", "content": prompt}],
                                                          max_tokens=10, stream=True)
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

        texts = await asyncio.gather(streamed("one"), streamed("two"), streamed("three"))
        whole = await client.chat.completions.create(model="tiny:base", messages=[{"role": "user", "content": "two"}], max_tokens=10)
    assert texts[1] == whole.choices[0].message.content
    assert texts[0] == through_zmq(http_daemon, "one", pair="tiny", mode="base", max_tokens=10)[0]


def test_stop_strings_end_the_response_before_them(oai):
    whole = oai.chat.completions.create(model="tiny:base", messages=HELLO, max_tokens=40)
    full, pieces = whole.choices[0].message.content, [t["text"] for t in whole.to_dict()["tokint"]["tokens"]]
    stop = next(p for p in pieces[4:] if p.strip() and "\ufffd" not in p and full.index(p) > 0)
    r = oai.chat.completions.create(model="tiny:base", messages=HELLO, max_tokens=40, stop=stop)
    assert r.choices[0].message.content == full[:full.index(stop)] and r.choices[0].finish_reason == "stop"
    listed = oai.chat.completions.create(model="tiny:base", messages=HELLO, max_tokens=40, stop=["\x00never", stop])
    assert listed.choices[0].message.content == r.choices[0].message.content


def test_a_seed_reproduces_a_sampled_response(oai):
    def sampled(seed):
        r = oai.chat.completions.create(model="tiny", messages=HELLO, max_tokens=24, temperature=1.0, top_p=0.95, seed=seed)
        return r.choices[0].message.content, r.to_dict()["tokint"]["summary"]["seed"]

    first, again, other = sampled(11), sampled(11), sampled(12)
    assert first == again and first[1] == 11
    assert other[0] != first[0]


def test_a_conversation_goes_through_as_messages(http_daemon, oai):
    messages = [{"role": "developer", "content": "Be brief."}]
    sizes = []
    for question in ("first question", "second one", "and a third"):
        messages.append({"role": "user", "content": question})
        r = oai.chat.completions.create(model="tiny", messages=messages, max_tokens=8, extra_body={"tokint": {"reuse_prefix": False}})
        messages.append({"role": "assistant", "content": r.choices[0].message.content})
        sizes.append(r.usage.prompt_tokens)
    assert sizes[0] < sizes[1] < sizes[2]  # each turn carries the ones before it
    as_zmq = [{"role": "system" if m["role"] == "developer" else m["role"], "content": m["content"]} for m in messages[:-1]]
    with Client(http_daemon.address) as c:
        events = list(c.chat(as_zmq, "tiny", max_tokens=8, reuse_prefix=False))
    assert "".join(e.text for e in events if isinstance(e, TokenEvent)) == messages[-1]["content"]
    with pytest.raises(openai.BadRequestError) as err:
        oai.chat.completions.create(model="tiny", messages=HELLO, extra_body={"tokint": {"chat_template_kwargs": {"messages": 1}}})
    assert err.value.param == "chat_template_kwargs"  # handed on to tokint, which checks it
    with pytest.raises(openai.BadRequestError) as err:
        oai.chat.completions.create(model="tiny", messages=[*HELLO, {"role": "tool", "content": "42"}])
    assert "messages[1].role" in err.value.message


def test_a_thinking_segment_comes_in_reasoning_content(tmp_path, daemon_address):
    from gguf_factory import write_scripted_pair
    from test_thinking import BASE_SCRIPT, QWEN3_LIKE, REASONING_SCRIPT

    base, reasoning = write_scripted_pair(tmp_path, BASE_SCRIPT, REASONING_SCRIPT, QWEN3_LIKE, "q3")
    models = tmp_path / "models.toml"
    models.write_text(f'[pairs.q3]\nbase = {{ path = "{base}", n_ctx = 256, n_threads = 1 }}\n'
                      f'reasoning = {{ path = "{reasoning}", n_ctx = 256, n_threads = 1 }}\n')
    port = free_port()
    d = DaemonProcess(models, daemon_address, "--http", f"127.0.0.1:{port}")
    hi = [{"role": "user", "content": "hi"}]
    try:
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0) as client:
            r = client.chat.completions.create(model="q3", messages=hi, max_tokens=20, extra_body={"tokint": {"threshold": 1.0}})
            chunks = list(client.chat.completions.create(model="q3", messages=hi, max_tokens=20, stream=True,
                                                         stream_options={"include_usage": True},
                                                         extra_body={"tokint": {"threshold": 1.0}}))
            off = client.chat.completions.create(model="q3", messages=hi, max_tokens=20,
                                                 extra_body={"tokint": {"chat_template_kwargs": {"enable_thinking": False}}})
    finally:
        d.stop()
    message = r.choices[0].message.to_dict()
    assert message["reasoning_content"] == "<think>hm</think>" and message["content"] == "\n\nOK"
    assert r.usage.completion_tokens_details.reasoning_tokens == 4
    ext = r.to_dict()["tokint"]
    assert [t["channel"] for t in ext["tokens"]] == ["thinking"] * 4 + ["answer"] * 4
    assert ext["summary"]["takeovers_by_channel"] == {"thinking": 1, "answer": 1}
    deltas = [c.choices[0].delta.to_dict() for c in chunks if c.choices]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "<think>hm</think>"
    assert "".join(d.get("content", "") for d in deltas) == "\n\nOK"
    assert not any("reasoning_content" in d and "content" in d for d in deltas)  # one channel per chunk
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens == 4
    assert off.choices[0].message.content == "OK" and "reasoning_content" not in off.choices[0].message.to_dict()


def test_completions_continue_the_prompt_as_plain_text(http_daemon, oai):
    r = oai.completions.create(model="tiny:base", prompt="Once upon a time", max_tokens=10)
    text, _, summary = through_zmq(http_daemon, "Once upon a time", pair="tiny", mode="base", max_tokens=10, raw=True)
    assert r.object == "text_completion" and r.choices[0].text == text
    assert r.usage.prompt_tokens == summary.prompt_tokens["base"]
    chunks = list(oai.completions.create(model="tiny:base", prompt=["Once upon a time"], max_tokens=10, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == text
    assert chunks[-1].choices[0].finish_reason == "length"


def test_logprobs_come_from_the_model_that_wrote_each_token(oai):
    r = oai.chat.completions.create(model="tiny", messages=HELLO, max_tokens=16, logprobs=True, top_logprobs=3)
    entries = r.choices[0].logprobs.content
    sources = [t["source"] for t in r.to_dict()["tokint"]["tokens"]]
    assert len(entries) == 16 and "reasoning" in sources and "base" in sources
    for entry in entries:  # greedy: the writer's own likeliest token, so its logprob is the writer's top one
        assert len(entry.top_logprobs) == 3 and entry.logprob <= 0
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob, abs=1e-5)
        assert sum(math.exp(t.logprob) for t in entry.top_logprobs) <= 1.0 + 1e-6
    legacy = oai.completions.create(model="tiny:base", prompt="Once upon", max_tokens=6, logprobs=2).choices[0].logprobs
    assert len(legacy.tokens) == len(legacy.token_logprobs) == len(legacy.text_offset) == 6
    assert all(len(top) <= 2 for top in legacy.top_logprobs)


def test_tokint_settings_come_in_the_extension_else_from_the_pair(oai):
    def summary(**kw):
        return oai.chat.completions.create(messages=HELLO, **kw).to_dict()["tokint"]["summary"]

    assert summary(model="tiny", max_tokens=12, extra_body={"tokint": {"threshold": "inf"}})["n_takeovers"] == 0
    limited = summary(model="tiny", max_tokens=12, extra_body={"tokint": {"threshold": 0, "budget": 2, "unheard_of": 1},
                                                               "frobnicate": True})
    assert limited["n_takeovers"] == 2 and limited["takeover_positions"] == [0, 1]
    defaults = summary(model="tiny-padded")  # its models.toml defaults: max_tokens 7, threshold 0
    assert defaults["n_tokens"] == 7 and defaults["n_takeovers"] == 7
    early = summary(model="tiny", max_tokens=12, extra_body={"tokint": {"threshold": 0, "max_position": 3, "schedule": "lockstep"}})
    assert early["takeover_positions"] == [0, 1, 2]
    drawn = [summary(model="tiny", max_tokens=12, seed=seed, extra_body={"tokint": {"gate": "random", "threshold": 0.5}})
             for seed in (1, 1, 2)]
    assert drawn[0]["takeover_positions"] == drawn[1]["takeover_positions"] != drawn[2]["takeover_positions"]
    assert 0 < drawn[0]["n_takeovers"] < 12
    with pytest.raises(openai.BadRequestError, match="gate"):
        summary(model="tiny", max_tokens=4, extra_body={"tokint": {"gate": "bogus"}})


def test_curl_gets_a_server_sent_event_stream(http_daemon):
    body = {"model": "tiny", "messages": HELLO, "max_tokens": 8, "stream": True}
    out = subprocess.run(["curl", "-sS", "-N", "-i", http_daemon.http_url + "/v1/chat/completions",
                          "-H", "Content-Type: application/json", "-d", json.dumps(body)],
                         capture_output=True, timeout=60, check=True).stdout.decode()
    head, _, stream = out.replace("\r\n", "\n").partition("\n\n")
    assert head.startswith("HTTP/1.1 200") and "content-type: text/event-stream" in head.lower()
    events = stream.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    chunks = [json.loads(e[len("data: "):]) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-1])
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == through_zmq(http_daemon, "Hello there", pair="tiny", max_tokens=8)[0]
    assert sum(len(c["tokint"]["tokens"]) for c in chunks) == 8
    print(f"curl: {len(chunks)} events then [DONE]")


def test_the_llm_tool_uses_tokint_as_an_openai_compatible_model(http_daemon, tmp_path):
    user = tmp_path / "llm-user"
    user.mkdir()
    (user / "extra-openai-models.yaml").write_text(
        f"- model_id: tokint-tiny\n  model_name: tiny\n  api_base: {http_daemon.http_url}/v1\n  can_stream: true\n")
    env = {**os.environ, "LLM_USER_PATH": str(user)}
    run = subprocess.run([sys.executable, "-m", "llm", "prompt", "-m", "tokint-tiny", "-o", "max_tokens", "12", "Hello there"],
                         capture_output=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr.decode()
    text = through_zmq(http_daemon, "Hello there", pair="tiny", max_tokens=12)[0]
    assert run.stdout.decode() == text + "\n"



# -- the real pair -------------------------------------------------------------------------
@pytest.mark.real
def test_the_real_pair_over_http_matches_the_zeromq_client(tmp_path, daemon_address):
    if not (REAL_BASE.is_file() and REAL_REASONING.is_file()):
        pytest.skip(REAL_MISSING)
    models = tmp_path / "models.toml"
    models.write_text(f'[pairs.real]\nbase = {{ path = "{REAL_BASE}", n_ctx = 1024, n_threads = 2 }}\n'
                      f'reasoning = {{ path = "{REAL_REASONING}", n_ctx = 1024, n_threads = 2 }}\n')
    port = free_port()
    d = DaemonProcess(models, daemon_address, "--http", f"127.0.0.1:{port}", "--preload", "real")
    prompt = "Write a Python function is_prime(n)."
    try:
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=300) as client:
            chunks = list(client.chat.completions.create(model="real", messages=[{"role": "user", "content": prompt}],
                                                         max_tokens=48, stream=True, stream_options={"include_usage": True}))
        text, tokens, summary = through_zmq(d, prompt, pair="real", max_tokens=48)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
        assert "def is_prime" in text
        streamed = [t for c in chunks for t in c.to_dict()["tokint"]["tokens"]]
        assert [t["source"] for t in streamed] == [e.source for e in tokens]
        final = next(c for c in chunks if c.choices and c.choices[0].finish_reason).to_dict()["tokint"]["summary"]
        assert final["takeover_positions"] == list(summary.takeover_positions)
        assert chunks[-1].usage.prompt_tokens_by_model == summary.prompt_tokens
        print(f"real pair over HTTP: {len(streamed)} tokens, {final['n_takeovers']} takeovers, same text as ZeroMQ")
    finally:
        d.stop()

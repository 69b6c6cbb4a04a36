"""The OpenAI-compatible HTTP API, driven by real clients: the official ``openai`` package (sync and
async, streamed and whole), ``curl`` for the raw event stream, and the ``llm`` command-line tool
configured with an OpenAI-compatible model entry. Each answer is checked against the same request
through the ZeroMQ client, on the same daemon."""
from __future__ import annotations

import asyncio
import http.client
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from urllib.parse import urlparse

import openai
import pytest

from conftest import REAL_BASE, REAL_MISSING, REAL_REASONING, DaemonProcess, free_port
from tokint_local import __version__
from tokint_local.client import Client
from tokint_local.events import Queued, Summary, TokenEvent
from tokint_local.history import list_generations, show_generation

HELLO = [{"role": "user", "content": "Hello there"}]


def wait_until(condition, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def oai(http_daemon):
    with openai.OpenAI(base_url=http_daemon.http_url + "/v1", api_key="unused", max_retries=0, timeout=60) as client:
        yield client


def through_zmq(daemon, prompt, **params) -> tuple[str, list[TokenEvent], Summary]:
    with Client(daemon.address, timeout=60) as c:
        events = [e for e in c.generate(prompt, **params) if isinstance(e, (TokenEvent, Summary))]
    tokens = events[:-1]
    return "".join(e.text for e in tokens), tokens, events[-1]


def idle(daemon) -> bool:
    with Client(daemon.address) as c:
        status = c.status()
    return status.queue_length == 0 and not any(p.active for p in status.loaded_pairs)


def open_stream(daemon, body: dict) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    url = urlparse(daemon.http_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    return conn, conn.getresponse()


def read_events(response: http.client.HTTPResponse, n: int) -> list[dict]:
    out = []
    while len(out) < n:
        line = response.readline().decode()
        if line.startswith("data: {"):
            out.append(json.loads(line[len("data: "):]))
    return out


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


# -- errors --------------------------------------------------------------------------------
def test_errors_come_in_the_openai_shape_with_their_status(oai):
    cases = [
        (openai.BadRequestError, 400, "invalid_parameter", "n", dict(model="tiny", messages=HELLO, n=2)),
        (openai.BadRequestError, 400, "invalid_parameter", "top_p", dict(model="tiny", messages=HELLO, top_p=0)),
        (openai.BadRequestError, 400, "invalid_parameter", "temperature", dict(model="tiny", messages=HELLO, temperature="hot")),
        (openai.BadRequestError, 400, "invalid_parameter", "messages", dict(model="tiny", messages=[])),
        (openai.BadRequestError, 400, "prompt_too_long", None,
         dict(model="tiny", messages=[{"role": "user", "content": "word " * 700}])),
        (openai.BadRequestError, 400, "prompt_too_long", None,
         dict(model="tiny", messages=[{"role": "user", "content": "word " * 700}], stream=True)),
        (openai.NotFoundError, 404, "model_not_found", None, dict(model="nope", messages=HELLO)),
        (openai.NotFoundError, 404, "model_not_found", None, dict(model="tiny:sideways", messages=HELLO)),
        (openai.InternalServerError, 503, "incompatible_pair", None, dict(model="tiny-mismatch", messages=HELLO)),
    ]
    for exc_type, status, code, param, kwargs in cases:
        with pytest.raises(exc_type) as err:
            oai.chat.completions.create(**kwargs)
        assert err.value.status_code == status, kwargs
        assert err.value.code == code and err.value.param == param, err.value.body
        assert err.value.body["type"] and err.value.body["message"]
    with pytest.raises(openai.NotFoundError) as err:
        oai.chat.completions.create(model="nope", messages=HELLO)
    assert "tiny:reasoning" in err.value.body["message"]  # says which models there are


def test_malformed_and_oversized_bodies_are_refused(http_daemon):
    def post(body: bytes):
        out = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", http_daemon.http_url + "/v1/chat/completions",
                              "-H", "Content-Type: application/json", "--data-binary", "@-"],
                             input=body, capture_output=True, timeout=30, check=True).stdout.decode()
        text, _, status = out.rpartition("\n")
        return int(status), json.loads(text)["error"]

    assert post(b"{not json")[0] == 400 and post(b"{not json")[1]["code"] == "malformed"
    status, error = post(json.dumps({"model": "tiny", "messages": HELLO, "pad": "x" * (2 << 20)}).encode())
    assert status == 413 and error["code"] == "too_large"


async def test_the_per_client_limit_counts_http_requests(http_daemon):
    async with openai.AsyncOpenAI(base_url=http_daemon.http_url + "/v1", api_key="unused", max_retries=0, timeout=120) as client:
        tasks = [asyncio.create_task(client.chat.completions.create(
            model="tiny-long", messages=[{"role": "user", "content": f"q{i}"}], max_tokens=7000)) for i in range(40)]
        refused = []
        pending = set(tasks)
        while len(refused) < 8 and pending:
            done, pending = await asyncio.wait(pending, timeout=20, return_when=asyncio.FIRST_COMPLETED)
            assert done, "no answer in 20 s"
            refused += [t for t in done if isinstance(t.exception(), openai.RateLimitError)]
        for task in pending:  # closing their connections cancels their generations
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    assert len(refused) == 8 and all(t.exception().code == "too_many_requests" for t in refused)
    wait_until(lambda: idle(http_daemon))
    print("HTTP per-client limit: 40 requests at once from one address, 32 accepted, 8 refused with 429")


# -- sharing with ZeroMQ clients, disconnects ----------------------------------------------
def test_http_and_zeromq_clients_share_the_pair_queue(http_daemon, oai):
    conn, response = open_stream(http_daemon, {"model": "tiny-long", "messages": HELLO, "max_tokens": 7000, "stream": True})
    try:
        http_id = read_events(response, 2)[0]["tokint"]["id"]
        with Client(http_daemon.address) as c:
            behind = c.generate("after you", pair="tiny-long", max_tokens=3)
            first = next(iter(behind))
            assert isinstance(first, Queued) and first.place == 1  # behind the HTTP request
            conn.close()  # the HTTP client leaves: the ZeroMQ request runs
            events = list(behind)
        assert isinstance(events[-1], Summary) and events[-1].n_tokens == 3
    finally:
        conn.close()
    ids = {g["id"] for g in list_generations(50, http_daemon.home / "history.sqlite")}
    assert {http_id, behind.id} <= ids


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_a_client_that_disconnects_has_its_generation_cancelled(http_daemon, oai, stream):
    conn, response = None, None
    body = {"model": "tiny-long", "messages": HELLO, "max_tokens": 7000, "stream": stream}
    if stream:
        conn, response = open_stream(http_daemon, body)
        read_events(response, 4)
    else:
        url = urlparse(http_daemon.http_url)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    with Client(http_daemon.address) as c:
        wait_until(lambda: any(p.active and p.active.tokens > 2 for p in c.status().loaded_pairs))
        job = next(p.active for p in c.status().loaded_pairs if p.active)
        gone = time.monotonic()
        conn.close()
        wait_until(lambda: not any(p.active for p in c.status().loaded_pairs))
        took = time.monotonic() - gone
    path = http_daemon.home / "history.sqlite"
    wait_until(lambda: show_generation(job.id, path)["state"] == "done")
    record = show_generation(job.id, path)
    assert record["finish_reason"] == "cancelled" and record["n_tokens"] < 7000
    nxt = oai.chat.completions.create(model="tiny-long", messages=HELLO, max_tokens=3)  # the pair is free again
    assert nxt.usage.completion_tokens == 3
    print(f"HTTP client ({'streamed' if stream else 'whole'}) gone after {record['n_tokens']} tokens: "
          f"generation cancelled {took:.2f} s after the disconnect")


def test_a_worker_crash_is_a_503(http_daemon, oai):
    result = {}

    def ask():
        try:
            oai.chat.completions.create(model="tiny-long", messages=HELLO, max_tokens=7000)
        except openai.APIStatusError as exc:
            result["error"] = exc

    thread = threading.Thread(target=ask)
    thread.start()
    with Client(http_daemon.address) as c:
        wait_until(lambda: any(p.active and p.active.tokens > 2 for p in c.status().loaded_pairs))
        os.kill(c.status().worker.pid, signal.SIGKILL)
        thread.join(30)
        assert result["error"].status_code == 503 and result["error"].code == "backend_crashed"
        assert "SIGKILL" in result["error"].message
        wait_until(lambda: c.status().worker.state == "running")
    assert oai.chat.completions.create(model="tiny", messages=HELLO, max_tokens=2).usage.completion_tokens == 2


def test_health_answers_without_a_model(http_daemon):
    out = subprocess.run(["curl", "-sS", http_daemon.http_url + "/health"], capture_output=True, timeout=30, check=True)
    assert json.loads(out.stdout) == {"status": "ok", "worker": "running", "version": __version__}


def test_shutdown_mid_stream_ends_the_stream_with_an_error(tiny_models_toml, daemon_address):
    port = free_port()
    d = DaemonProcess(tiny_models_toml, daemon_address, "--http", f"127.0.0.1:{port}")
    try:
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0) as client:
            stream = client.chat.completions.create(model="tiny-long", messages=HELLO, max_tokens=7000, stream=True)
            with pytest.raises(openai.APIError) as err:
                for n, _ in enumerate(stream):
                    if n == 3:
                        d.proc.send_signal(signal.SIGTERM)
        assert "shutting down" in str(err.value)
        assert d.proc.wait(10) == 0
    finally:
        d.stop()


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

"""The OpenAI-compatible HTTP API when a request cannot be served: errors in the OpenAI shape with
their HTTP status (bad parameters, a prompt too long, an unknown model, an incompatible pair),
malformed and oversized bodies, and the per-client limit (429)."""
from __future__ import annotations

import asyncio
import json
import subprocess

import openai
import pytest

from conftest import wait_until
from test_http_api import HELLO
from tokint_local.client import Client


def idle(daemon) -> bool:
    with Client(daemon.address) as c:
        status = c.status()
    return status.queue_length == 0 and not any(p.active for p in status.loaded_pairs)


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

"""An HTTP request among the daemon's other work and when it is cut short: it waits in the pair's
queue with ZeroMQ clients' requests, a client that disconnects (streamed or waiting for a whole
response) has its generation cancelled, a worker crash under it is a 503, a shutdown ends its
stream with an error; and /health."""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import threading
import time
from urllib.parse import urlparse

import openai
import pytest

from conftest import DaemonProcess, free_port, wait_until
from test_http_api import HELLO
from tokint_local import __version__
from tokint_local.client import Client
from tokint_local.events import Queued, Summary
from tokint_local.history import list_generations, show_generation


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

"""Streaming over the OpenAI-compatible HTTP API against the ZeroMQ client, same daemon, same run.

    python bench/http_speed.py [--tokens 128] [--threads 2] [--prompts 3] [--models FILE --pair NAME]

Starts a real tokintd (subprocess) with the real pair preloaded, serving ZeroMQ on an ipc socket
and HTTP on a loopback port. For each prompt and mode it runs the same greedy request through the
ZeroMQ client (tokint_local.Client) and through the official ``openai`` package (streamed chat
completion), one after the other, alternating which goes first. Tokens/s is measured where the
tokens are consumed: (tokens - 1) / (last arrival - first arrival); "paired ratio" is the median
over requests of HTTP's tokens/s over ZeroMQ's for the same request, which the load other
programs put on the machine disturbs less than the ratio of the means. (Time to first token is
not compared: the second of two identical requests reuses the first one's prompt cache.) A token's lag is (its arrival
- the request's send time) - the engine's own ``t`` for it (from the daemon's history, the same
source for both): how late it reaches the client after the engine produced it. The added latency
per token is HTTP's lag minus ZeroMQ's at the same position of the same (greedy, identical)
response. ``--models``/``--pair`` run another pair instead (a tiny one shows what each transport
costs per token when the engine is nearly free).
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import openai  # noqa: E402

from common import BASE, PROMPTS, REASONING, git_rev, machine, mean, require_models, table, wait_for_preload  # noqa: E402
from tokint_local.client import Client  # noqa: E402
from tokint_local.events import TokenEvent  # noqa: E402
from tokint_local.history import show_generation  # noqa: E402

MODEL = "bench"  # the pair's name in the daemon (--pair renames it)


def through_zmq(client: Client, prompt: str, mode: str, n: int) -> dict:
    sent = time.perf_counter()
    arrivals = []
    stream = client.generate(prompt, pair=MODEL, mode=mode, max_tokens=n)
    for event in stream:
        if isinstance(event, TokenEvent):
            arrivals.append(time.perf_counter())
    return {"id": stream.id, "sent": sent, "arrivals": arrivals}


def through_http(client: openai.OpenAI, prompt: str, mode: str, n: int) -> dict:
    model = MODEL if mode == "intervene" else f"{MODEL}:{mode}"
    sent = time.perf_counter()
    arrivals, job = [], None
    for chunk in client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                                max_tokens=n, stream=True):
        now = time.perf_counter()
        tokint = chunk.tokint
        job = job or tokint.get("id")
        arrivals += [now] * len(tokint["tokens"])
    return {"id": job, "sent": sent, "arrivals": arrivals}


def finish(run: dict, home: Path) -> dict:
    """Tokens/s and per-token lags, with the engine's token times from the history."""
    deadline = time.monotonic() + 10
    while True:  # the history writer commits in batches
        record = show_generation(run["id"], home / "history.sqlite")
        if record["state"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    engine_t = [tok["t"] for tok in record["tokens"]]
    arrivals = run["arrivals"]
    assert len(engine_t) == len(arrivals), (len(engine_t), len(arrivals))
    return {"tps": (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]),
            "lag": [(a - run["sent"]) - t for a, t in zip(arrivals, engine_t)],
            "texts": [tok["text"] for tok in record["tokens"]]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_daemon(folder: Path, threads: int, models: Path | None) -> tuple[subprocess.Popen, str, str, Path]:
    if models is None:
        models = folder / "models.toml"
        models.write_text(f'[pairs.{MODEL}]\nbase = {{ path = "{BASE}", n_threads = {threads} }}\n'
                          f'reasoning = {{ path = "{REASONING}", n_threads = {threads} }}\n')
    address, port, home = f"ipc://{folder}/d.sock", free_port(), folder / "home"
    home.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "--models", str(models), "--bind", address,
                             "--http", f"127.0.0.1:{port}", "--preload", MODEL, "--log-level", "warning"],
                            cwd=ROOT, env={**os.environ, "TOKINT_HOME": str(home)})
    wait_for_preload(proc, address, 120)
    return proc, address, f"http://127.0.0.1:{port}/v1", home


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=3)
    ap.add_argument("--models", type=Path, help="a models.toml to serve instead of the real pair")
    ap.add_argument("--pair", help="the pair of --models to run")
    args = ap.parse_args()
    global MODEL
    if args.models:
        MODEL = args.pair
    else:
        require_models()
    folder = Path(tempfile.mkdtemp(prefix="tkh", dir="/tmp"))
    proc, address, base_url, home = start_daemon(folder, args.threads, args.models)
    results = {m: {"zmq": [], "http": [], "added": [], "ratios": []} for m in ("base", "intervene")}
    load_before = os.getloadavg()[0]
    try:
        with Client(address, timeout=600) as zmq_client, \
                openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=600) as http_client:
            through_http(http_client, "warm up", "base", 4)  # first-request costs (imports, connection) out of the way
            for i, prompt in enumerate(PROMPTS[: args.prompts]):
                for mode, r in results.items():
                    order = [("zmq", through_zmq, zmq_client), ("http", through_http, http_client)]
                    runs = {}
                    for name, run, client in (order if i % 2 == 0 else order[::-1]):
                        runs[name] = finish(run(client, prompt, mode, args.tokens), home)
                    assert runs["zmq"]["texts"] == runs["http"]["texts"], "the two responses differ"
                    r["zmq"].append(runs["zmq"])
                    r["http"].append(runs["http"])
                    r["added"] += [h - z for h, z in zip(runs["http"]["lag"], runs["zmq"]["lag"])]
                    r["ratios"].append(runs["http"]["tps"] / runs["zmq"]["tps"])
                    print(f"{mode:9} {prompt[:30]!r}: ZeroMQ {runs['zmq']['tps']:.1f} tok/s, HTTP {runs['http']['tps']:.1f} tok/s",
                          file=sys.stderr)
            load_after = os.getloadavg()[0]
            zmq_client.shutdown()
    finally:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    rows = []
    for mode, r in results.items():
        zt, ht = mean([x["tps"] for x in r["zmq"]]), mean([x["tps"] for x in r["http"]])
        zlag = [v for x in r["zmq"] for v in x["lag"]]
        hlag = [v for x in r["http"] for v in x["lag"]]
        rows.append([mode, zt, ht, ht / zt, statistics.median(r["ratios"]),
                     1000 * statistics.median(zlag), 1000 * statistics.median(hlag),
                     1000 * statistics.median(r["added"]), 1000 * statistics.quantiles(r["added"], n=20)[-1]])
    print(f"\n{args.pair or 'qwen2.5-coder'} pair, CPU ({machine()}), {args.threads} threads, greedy, {args.tokens} tokens, "
          f"{args.prompts} prompts, commit {git_rev()}, load average {load_before:.1f} before / {load_after:.1f} after\n")
    print(table(["mode", "ZeroMQ tok/s", "HTTP tok/s", "ratio", "paired ratio", "lag ZeroMQ median ms",
                 "lag HTTP median ms", "added median ms", "added p95 ms"], rows))


if __name__ == "__main__":
    main()

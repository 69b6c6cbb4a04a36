"""Streaming through tokintd against the in-process engine, side by side, on the real pair.

    python bench/daemon_speed.py [--tokens 128] [--threads 2] [--prompts 5]

Starts a real tokintd (subprocess, ipc socket) with the real pair preloaded, and in this process
loads the same pair for the in-process engine. For each prompt and mode, runs the same greedy
request both ways, one after the other. Tokens/s is measured where the tokens are consumed:
the in-process loop, or the client receiving the stream. Latency per token is, for each token,
(time the client received it - time the request was sent) - (the engine's own t for it): how late
a token reaches the client compared with when the engine produced it (it includes the request's
way to the worker, so it bounds the added latency from above). The daemon also times each token's
hop from its llama.cpp worker process (``status().worker.token_hop_ms``, on the machine-wide
monotonic clock): that hop is what running llama.cpp in a separate process adds per token.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import BASE, PROMPTS, REASONING, git_rev, machine, mean, real_pair, require_models, table, wait_for_preload  # noqa: E402
from tokint_local.client import Client  # noqa: E402
from tokint_local.engine import generate  # noqa: E402
from tokint_local.events import GenerationRequest, Summary, TokenEvent  # noqa: E402


def in_process(pair, prompt, mode, n):
    t0 = time.perf_counter()
    times, first = [], None
    for event in generate(pair, GenerationRequest(prompt=prompt, mode=mode, max_tokens=n)):
        if isinstance(event, TokenEvent):
            times.append(time.perf_counter())
    return {"tps": (len(times) - 1) / (times[-1] - times[0]), "ttft": times[0] - t0, "n": len(times)}


def through_daemon(client, prompt, mode, n):
    sent = time.perf_counter()
    recv, lag = [], []
    for event in client.generate(prompt, pair="bench", mode=mode, max_tokens=n):
        now = time.perf_counter()
        if isinstance(event, TokenEvent):
            recv.append(now)
            lag.append((now - sent) - event.t)
    return {"tps": (len(recv) - 1) / (recv[-1] - recv[0]), "ttft": recv[0] - sent, "n": len(recv), "lag": lag}


def start_daemon(folder: Path, threads: int) -> tuple[subprocess.Popen, str]:
    models = folder / "models.toml"
    models.write_text(f'[pairs.bench]\nbase = {{ path = "{BASE}", n_threads = {threads} }}\n'
                      f'reasoning = {{ path = "{REASONING}", n_threads = {threads} }}\n')
    address = f"ipc://{folder}/d.sock"
    proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "--models", str(models), "--bind", address,
                             "--preload", "bench", "--log-level", "warning"], cwd=ROOT)
    wait_for_preload(proc, address, 60)
    return proc, address


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=5)
    args = ap.parse_args()
    require_models()
    folder = Path(tempfile.mkdtemp(prefix="tkb", dir="/tmp"))
    proc, address = start_daemon(folder, args.threads)
    pair = real_pair(args.threads)
    results = {m: {"local": [], "daemon": []} for m in ("base", "intervene")}
    try:
        with Client(address, timeout=600) as client:
            for prompt in PROMPTS[: args.prompts]:
                for mode in results:
                    local = in_process(pair, prompt, mode, args.tokens)
                    remote = through_daemon(client, prompt, mode, args.tokens)
                    results[mode]["local"].append(local)
                    results[mode]["daemon"].append(remote)
                    print(f"{mode:9} {prompt[:30]!r}: in-process {local['tps']:.1f} tok/s, daemon {remote['tps']:.1f} tok/s",
                          file=sys.stderr)
            worker = client.status().worker
            hop = worker.token_hop_ms if worker is not None else None
            client.shutdown()
    finally:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    rows = []
    for mode, r in results.items():
        lt, dt = mean([x["tps"] for x in r["local"]]), mean([x["tps"] for x in r["daemon"]])
        lags = [v for x in r["daemon"] for v in x["lag"]]
        rows.append([mode, lt, dt, dt / lt, 1000 * mean([x["ttft"] for x in r["local"]]),
                     1000 * mean([x["ttft"] for x in r["daemon"]]), 1000 * statistics.median(lags),
                     1000 * statistics.quantiles(lags, n=20)[-1]])
    print(f"\nqwen2.5-coder pair, CPU ({machine()}), {args.threads} threads, greedy, {args.tokens} tokens, "
          f"{args.prompts} prompts, commit {git_rev()}\n")
    print(table(["mode", "in-process tok/s", "daemon tok/s", "ratio", "TTFT in-process ms", "TTFT daemon ms",
                 "token lag median ms", "token lag p95 ms"], rows))
    if hop:
        print(f"\nworker -> daemon hop per token (the daemon's own timing): median {hop[0]:.3f} ms, p95 {hop[1]:.3f} ms")


if __name__ == "__main__":
    main()

"""Prompts and responses at the edges of llama.cpp's sizes end in prompt_too_long or a normal
generation, never in one of its assertions (which would abort the process).

llama.cpp pads n_ctx up to a multiple of 256 but caps its batch at the n_ctx asked for; a batch
larger than that aborts it. The sweep runs in a child process of its own, so an abort fails the
test instead of killing pytest; the child prints one JSON line per case.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODES = [("base", "block"), ("reasoning", "block"), ("intervene", "block"), ("intervene", "lockstep")]

# (n_ctx, n_batch as configured): llama.cpp's batch is min(n_ctx, n_batch)
CONTEXTS = [(64, 512), (100, 512), (256, 512), (300, 512), (100, 32), (300, 128)]


def prompt_lengths(n_ctx: int, n_batch: int) -> list[int]:
    batch = min(n_ctx, n_batch)
    edges = {1, 2, batch - 1, batch, batch + 1, 2 * batch + 1, n_ctx - 2, n_ctx - 1, n_ctx, n_ctx + 1, n_ctx * 3 // 2}
    return sorted(n for n in edges if n >= 1)


def sweep(base: str, reasoning: str, n_ctx: int, n_batch: int) -> None:
    """In the child: every prompt length x mode x schedule, one JSON line each."""
    sys.path.insert(0, str(ROOT))
    from tokint_local.config import ModelEntry, PairEntry
    from tokint_local.engine import generate
    from tokint_local.errors import PromptTooLong
    from tokint_local.events import GenerationRequest, Summary, TokenEvent
    from tokint_local.pair import open_pair

    entry = PairEntry("edge", ModelEntry("base", path=Path(base), n_ctx=n_ctx, n_batch=n_batch, n_threads=1),
                      ModelEntry("reasoning", path=Path(reasoning), n_ctx=n_ctx, n_batch=n_batch, n_threads=1))
    pair = open_pair(entry)
    print(json.dumps({"sizes": [pair.base.n_ctx, pair.base.n_batch]}), flush=True)
    for n in prompt_lengths(n_ctx, n_batch):
        prompt = "x" * n
        assert len(pair.base.tokenize(prompt, add_special=False, parse_special=False)) == n
        for mode, schedule in MODES:
            case = {"n": n, "mode": mode, "schedule": schedule}
            print(json.dumps({**case, "starting": True}), flush=True)  # the last line before an abort names it
            request = GenerationRequest(prompt=prompt, raw=True, mode=mode, schedule=schedule, max_tokens=12,
                                        threshold=0.5)
            try:
                events = list(generate(pair, request))
            except PromptTooLong:
                print(json.dumps({**case, "outcome": "prompt_too_long"}), flush=True)
                continue
            tokens = [e for e in events if isinstance(e, TokenEvent)]
            assert isinstance(events[-1], Summary)
            print(json.dumps({**case, "outcome": "generated", "tokens": len(tokens),
                              "finish": events[-1].finish_reason}), flush=True)
    # a draft longer than the batch: the scoring batch must be cut to n_batch (llama.cpp asserts otherwise)
    request = GenerationRequest(prompt="x", raw=True, mode="intervene", schedule="block", block_size=64,
                                max_tokens=80, threshold=1e9)
    events = list(generate(pair, request))
    print(json.dumps({"n": 1, "mode": "long-draft", "schedule": "block", "outcome": "generated",
                      "tokens": events[-1].n_tokens, "finish": events[-1].finish_reason}), flush=True)
    pair.close()


@pytest.mark.parametrize("n_ctx,n_batch", CONTEXTS, ids=lambda v: str(v))
def test_every_prompt_length_is_refused_or_generated(tiny_files, n_ctx, n_batch):
    child = subprocess.run(
        [sys.executable, __file__, str(tiny_files["base"]), str(tiny_files["reasoning"]), str(n_ctx), str(n_batch)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    lines = [json.loads(line) for line in child.stdout.splitlines() if line.startswith("{")]
    assert child.returncode == 0, f"the child died ({child.returncode}) at {lines[-1] if lines else None}: {child.stderr[-2000:]}"
    usable, batch = lines[0]["sizes"]
    assert usable == n_ctx and batch == min(n_ctx, n_batch)  # what llama.cpp uses, not its padded n_ctx
    results = [r for r in lines[1:] if "outcome" in r]
    assert len(results) == len(prompt_lengths(n_ctx, n_batch)) * len(MODES) + 1
    for r in results:
        if r["n"] >= n_ctx:
            assert r["outcome"] == "prompt_too_long", r
        else:
            assert r["outcome"] == "generated" and r["tokens"] >= 1, r
            # the response stops at max_tokens, at the end of generation or when the context is full
            assert r["tokens"] <= max(12 if r["mode"] != "long-draft" else 80, 1), r
            if r["n"] + r["tokens"] < n_ctx and r["mode"] != "long-draft":
                assert r["tokens"] == 12 or r["finish"] == "stop", r
    long_draft = results[-1]
    assert long_draft["mode"] == "long-draft" and long_draft["tokens"] >= 1
    refused = sum(r["outcome"] == "prompt_too_long" for r in results)
    print(f"n_ctx {n_ctx}, n_batch {n_batch} (llama.cpp's batch {batch}): {len(results)} cases, "
          f"{refused} prompt_too_long, {len(results) - refused} generated")


def test_the_reported_prompt_is_refused_by_tokint_local(tmp_path, tiny_files):
    """The issue's report: n_ctx 100 and a raw prompt of 150 tokens through `tokint generate --local`."""
    models = tmp_path / "models.toml"
    models.write_text(f"""
default_pair = "small"
[pairs.small]
base = {{ path = "{tiny_files["base"]}", n_ctx = 100, n_threads = 1 }}
reasoning = {{ path = "{tiny_files["reasoning"]}", n_ctx = 100, n_threads = 1 }}
""")
    run = subprocess.run([sys.executable, "-m", "tokint_local.cli", "generate", "--models", str(models), "--local",
                          "--raw", "--max-tokens", "4", "x" * 150], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode > 0, run  # an error exit, not a signal
    assert "150 tokens" in run.stderr and "100" in run.stderr


def test_the_daemon_refuses_it_and_keeps_serving(tmp_path, tiny_files, daemon_address):
    from conftest import DaemonProcess
    from tokint_local.client import Client
    from tokint_local.errors import PromptTooLong
    from tokint_local.events import Summary

    models = tmp_path / "models.toml"
    models.write_text(f"""
default_pair = "small"
[pairs.small]
base = {{ path = "{tiny_files["base"]}", n_ctx = 100, n_threads = 1 }}
reasoning = {{ path = "{tiny_files["reasoning"]}", n_ctx = 100, n_threads = 1 }}
""")
    d = DaemonProcess(models, daemon_address)
    try:
        with Client(d.address) as c:
            with pytest.raises(PromptTooLong, match="150 tokens"):
                list(c.generate("x" * 150, raw=True, max_tokens=4))
            events = list(c.generate("x" * 95, raw=True, max_tokens=20))
            assert isinstance(events[-1], Summary) and events[-1].n_tokens >= 1
        assert d.proc.poll() is None
    finally:
        d.stop()


if __name__ == "__main__":
    sweep(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))

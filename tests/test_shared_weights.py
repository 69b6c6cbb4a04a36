"""A model file used twice is in memory once, and every use of it has a KV cache of its own.

Same file as base and reasoning: the two models are the same function, so the divergence is 0 at
every position and intervention gives exactly the base model's tokens; a shared cache would make
the reasoning model read the base model's positions.
"""
import pytest

from daemon.registry import Registry
from tokint_local.client import Client
from tokint_local.config import load_models
from tokint_local.engine import generate
from tokint_local.events import GenerationRequest, Summary, TokenEvent
from tokint_local.pair import open_pair

PROMPTS = ["hello there", "the cat sat on the mat", "write a story about a robot"]


def models_text(files) -> str:
    def model(p):
        return f'{{ path = "{p}", n_ctx = 512, n_threads = 1 }}'

    return f"""
default_pair = "same"
[pairs.same]
base = {model(files["base"])}
reasoning = {model(files["base"])}

[pairs.tiny]
base = {model(files["base"])}
reasoning = {model(files["reasoning"])}

[pairs.swapped]
base = {model(files["reasoning"])}
reasoning = {model(files["base"])}
"""


@pytest.fixture
def models(tmp_path, tiny_files):
    path = tmp_path / "models.toml"
    path.write_text(models_text(tiny_files))
    return load_models(path)


def tokens_of(events):
    return [e for e in events if isinstance(e, TokenEvent)]


def run(pair, **kw):
    kw.setdefault("max_tokens", 30)
    events = list(generate(pair, GenerationRequest(**kw)))
    assert isinstance(events[-1], Summary)
    return tokens_of(events)


def check_same_file_pair(tokens_lock, tokens_block, base_tokens):
    assert [t.token_id for t in tokens_lock] == [t.token_id for t in base_tokens]
    assert [t.token_id for t in tokens_block] == [t.token_id for t in base_tokens]
    assert all(t.source == "base" for t in tokens_lock + tokens_block)
    # lockstep: both contexts decode the same tokens the same way, bit for bit
    assert [t.divergence for t in tokens_lock] == [0.0] * len(tokens_lock)
    # block: the reasoning model scores a draft as one batch; llama.cpp rounds batches differently
    assert all(0.0 <= t.divergence < 1e-4 for t in tokens_block)
    print(f"same file, {len(base_tokens)} tokens: largest divergence lockstep "
          f"{max(t.divergence for t in tokens_lock)}, block {max(t.divergence for t in tokens_block):.2g}")


def test_same_file_in_process_gives_zero_divergence_and_the_base_tokens(models):
    pair = open_pair(models.pair("same"))
    try:
        assert pair.base is not pair.reasoning and pair.base.weights is pair.reasoning.weights
        assert pair.base.weights.users == 2
        for prompt in PROMPTS:
            base = run(pair, prompt=prompt, mode="base")
            lock = run(pair, prompt=prompt, threshold=1e-3, schedule="lockstep")
            block = run(pair, prompt=prompt, threshold=1e-3, schedule="block")
            check_same_file_pair(lock, block, base)
    finally:
        pair.close()
    assert pair.base.weights.closed  # the last context released the weights


def test_registry_loads_a_shared_file_once_and_frees_it_with_its_last_pair(models, tiny_files):
    registry = Registry(models)
    try:
        same = registry.load("same")
        base_size = same.base.memory_bytes()
        assert registry.model_bytes() == base_size == same.model_bytes()
        [weights] = registry.loaded_weights()
        assert weights.users == 2
        tiny = registry.load("tiny")
        assert tiny.base.weights is weights and weights.users == 3
        assert registry.model_bytes() == base_size + tiny.reasoning.memory_bytes()
        assert registry.unload("same")
        assert weights.users == 1 and not weights.closed
        assert registry.model_bytes() == base_size + tiny.reasoning.memory_bytes()
        assert registry.unload("tiny")
        assert weights.closed and registry.model_bytes() == 0 and registry.loaded_weights() == []
        again = registry.load("same")  # freed weights are loaded afresh
        assert not again.base.weights.closed and registry.model_bytes() == base_size
    finally:
        registry.close()


def test_two_pairs_sharing_a_file_give_their_solo_results(models):
    request = dict(max_tokens=30, threshold=1.0)
    solo = {}
    for name in ("tiny", "swapped"):
        pair = open_pair(models.pair(name))
        try:
            solo[name] = {p: [(t.token_id, t.source) for t in run(pair, prompt=p, **request)] for p in PROMPTS}
        finally:
            pair.close()
    assert solo["tiny"] != solo["swapped"]
    registry = Registry(models)
    try:
        pairs = {name: registry.load(name) for name in ("tiny", "swapped")}
        assert pairs["tiny"].base.weights is pairs["swapped"].reasoning.weights
        assert registry.model_bytes() == pairs["tiny"].model_bytes()  # two files, each in memory once
        for prompt in PROMPTS:
            for name in ("tiny", "swapped", "tiny"):
                with pairs[name].exclusive() as pair:
                    assert [(t.token_id, t.source) for t in run(pair, prompt=prompt, **request)] == solo[name][prompt]
    finally:
        registry.close()


def test_same_file_through_the_daemon(tmp_path, tiny_files, daemon_address):
    from conftest import DaemonProcess

    path = tmp_path / "models.toml"
    path.write_text(models_text(tiny_files))
    d = DaemonProcess(path, daemon_address)
    try:
        with Client(d.address) as c:
            for prompt in PROMPTS:
                base = tokens_of(c.generate(prompt, pair="same", mode="base", max_tokens=30))
                lock = tokens_of(c.generate(prompt, pair="same", threshold=1e-3, schedule="lockstep", max_tokens=30))
                block = tokens_of(c.generate(prompt, pair="same", threshold=1e-3, max_tokens=30))
                check_same_file_pair(lock, block, base)
            # the file is in the daemon's memory once, not once per role
            assert c.status().model_bytes <= tiny_files["base"].stat().st_size < 2 * c.status().model_bytes
    finally:
        d.stop()

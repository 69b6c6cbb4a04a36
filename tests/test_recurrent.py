"""Recurrent models (a tiny Mamba pair): their state cannot be cut back to a position, so a failed
rollback raises instead of wiping the cache behind the engine's back, prompts are decoded afresh,
and intervention runs the lockstep schedule whatever was asked."""
import numpy as np
import pytest

from gguf_factory import write_tiny_mamba_pair
from tokint_local.backend import LlamaModel, ModelSettings
from tokint_local.client import Client
from tokint_local.config import load_models
from tokint_local.engine import generate
from tokint_local.errors import BackendError
from tokint_local.events import GenerationRequest, Summary, TokenEvent
from tokint_local.pair import open_pair
from tokint_local.render import pairs_text
from tokint_local.status import describe_pair

REQUESTS = [
    dict(mode="base"),
    dict(mode="reasoning"),
    dict(mode="intervene", threshold=0.5, schedule="block"),
    dict(mode="intervene", threshold=0.5, schedule="lockstep"),
    dict(mode="intervene", threshold=0.5, budget=3, schedule="block", block_size=8),
]


@pytest.fixture(scope="module")
def mamba_files(tmp_path_factory):
    base, reasoning = write_tiny_mamba_pair(tmp_path_factory.mktemp("mamba"))
    return {"base": base, "reasoning": reasoning}


@pytest.fixture
def models(tmp_path, mamba_files, tiny_files):
    path = tmp_path / "models.toml"
    path.write_text(f"""
default_pair = "mamba"
[pairs.mamba]
base = {{ path = "{mamba_files["base"]}", n_ctx = 512, n_threads = 1 }}
reasoning = {{ path = "{mamba_files["reasoning"]}", n_ctx = 512, n_threads = 1 }}

[pairs.tiny]
base = {{ path = "{tiny_files["base"]}", n_ctx = 512, n_threads = 1 }}
reasoning = {{ path = "{tiny_files["reasoning"]}", n_ctx = 512, n_threads = 1 }}
""")
    return path


def test_a_partial_rollback_raises_and_leaves_an_empty_cache(mamba_files):
    model = LlamaModel(ModelSettings(path=mamba_files["base"], n_ctx=128, n_threads=1))
    try:
        assert not model.can_roll_back and model.weights.architecture == "mamba"
        tokens = model.tokenize("the cat sat on the mat", add_special=False, parse_special=False)
        first = model.prefill(tokens)
        model.decode([5, 6, 7])
        with pytest.raises(BackendError, match="cannot roll the cache"):
            model.truncate(len(tokens))
        assert model.n_past == 0
        # after the refusal the model is as good as new: the prompt decodes to the same logits
        np.testing.assert_array_equal(model.prefill(tokens), first)
        model.decode([5, 6, 7])
        model.truncate(0)  # emptying the cache always works
        assert model.n_past == 0
    finally:
        model.close()


def test_prefill_decodes_afresh_unless_the_cache_holds_exactly_the_prompt(mamba_files):
    model = LlamaModel(ModelSettings(path=mamba_files["base"], n_ctx=128, n_threads=1))
    try:
        tokens = model.tokenize("hello there", add_special=False, parse_special=False)
        cold = model.prefill(tokens)
        np.testing.assert_array_equal(model.prefill(tokens), cold)  # the cache holds exactly it: kept
        after = model.decode([9], [0])[0]
        np.testing.assert_array_equal(model.prefill(tokens), cold)  # a response follows it: decoded again
        np.testing.assert_array_equal(model.decode([9], [0])[0], after)
        assert model.n_past == len(tokens) + 1
    finally:
        model.close()


def test_a_llama_model_rolls_back(tiny_files):
    model = LlamaModel(ModelSettings(path=tiny_files["base"], n_ctx=64, n_threads=1))
    try:
        assert model.can_roll_back and model.weights.architecture == "llama"
    finally:
        model.close()


def run(pair, prompt, **kw):
    events = list(generate(pair, GenerationRequest(prompt=prompt, max_tokens=25, **kw)))
    assert isinstance(events[-1], Summary)
    return [(e.token_id, e.source) for e in events if isinstance(e, TokenEvent)], events[-1]


def test_the_same_request_gives_one_output_every_time_in_process(models):
    pair = open_pair(load_models(models).pair("mamba"))
    try:
        assert not pair.can_roll_back
        takeovers = 0
        for kw in REQUESTS:
            first, summary = run(pair, "hello there", **kw)
            run(pair, "something else first", **kw)  # whatever ran before must not matter
            assert run(pair, "hello there", **kw)[0] == first
            assert run(pair, "hello there", **kw)[0] == first
            assert len(first) == summary.n_tokens > 0
            takeovers += summary.n_takeovers
        assert takeovers > 0  # the gate fired: the reasoning model's tokens were used
        # block was asked for, lockstep ran: the same tokens as asking for lockstep
        block = run(pair, "hello there", mode="intervene", threshold=0.5, schedule="block")[0]
        assert block == run(pair, "hello there", mode="intervene", threshold=0.5, schedule="lockstep")[0]
    finally:
        pair.close()


def test_pairs_says_lockstep_only(models):
    entries = load_models(models)
    mamba = describe_pair(entries.pair("mamba"), True)
    assert mamba.lockstep_only and "base is mamba" in mamba.schedule_detail and "reasoning is mamba" in mamba.schedule_detail
    assert mamba.compatible
    tiny = describe_pair(entries.pair("tiny"), False)
    assert not tiny.lockstep_only
    text = pairs_text([mamba, tiny])
    assert text.count("lockstep only") == 1 and "cannot be rolled back" in text


def test_the_same_request_gives_one_output_every_time_through_the_daemon(models, daemon_address):
    from conftest import DaemonProcess

    d = DaemonProcess(models, daemon_address)
    try:
        with Client(d.address) as c:
            listing = {p.name: p for p in c.list_pairs()}
            assert listing["mamba"].lockstep_only and not listing["tiny"].lockstep_only
            first = []
            for kw in REQUESTS:
                outputs = []
                for prompt in ("hello there", "something else", "hello there", "hello there"):
                    events = list(c.generate(prompt, pair="mamba", max_tokens=25, **kw))
                    assert isinstance(events[-1], Summary)
                    if prompt == "hello there":
                        outputs.append([(e.token_id, e.source) for e in events if isinstance(e, TokenEvent)])
                assert outputs[0] == outputs[1] == outputs[2] and outputs[0]
                first.append(outputs[0])
            assert first[2] == first[3]  # block was asked for, lockstep ran
            assert any(source == "reasoning" for _, source in first[2])
    finally:
        d.stop()

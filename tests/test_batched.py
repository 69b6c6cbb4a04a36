"""Several generations at once on one pair (batched decoding, slots.py and batcher.py): on the tiny
models every generation gives exactly what it gives alone, whatever its settings and whatever runs
beside it, joins and leaves, cancels and a small n_batch."""
import itertools
import threading

import numpy as np
import pytest

from tokint_local.backend import LlamaModel, ModelSettings
from tokint_local.batcher import Batcher, serve
from tokint_local.config import ModelEntry, PairEntry, load_models
from tokint_local.engine import Cancel, generate
from tokint_local.errors import BackendError, PromptTooLong
from tokint_local.events import GenerationRequest, Summary, TokenEvent
from tokint_local.pair import open_pair
from tokint_local.slots import Slots, generate_together

from conftest import models_toml_text

PROMPTS = ["hello there", "the cat sat on the mat", "write a story about a robot", "x", "is it on or at?",
           "count to ten", "abc", "tokint"]


@pytest.fixture(scope="module")
def multi_pair(tiny_files, tmp_path_factory):
    """The tiny pair with four slots, over its own contexts (the session's tiny_pair is the solo reference)."""
    path = tmp_path_factory.mktemp("multi") / "models.toml"
    path.write_text(models_toml_text(tiny_files))
    pair = open_pair(load_models(path).pair("tiny"), parallel=4)
    yield pair
    pair.close()


def tokens_of(events):
    return [e for e in events if isinstance(e, TokenEvent)]


def assert_same(alone, together):
    a, b = tokens_of(alone), tokens_of(together)
    assert [(t.position, t.token_id, t.source, t.budget_left, t.text) for t in a] == \
        [(t.position, t.token_id, t.source, t.budget_left, t.text) for t in b]
    for x, y in zip(a, b):
        assert (x.divergence is None) == (y.divergence is None)
        if x.divergence is not None:  # a batch of several sequences rounds differently (~1e-4 here)
            assert x.divergence == pytest.approx(y.divergence, rel=2e-3, abs=1e-4)
        if x.top_k is not None:
            assert [c[0] for c in x.top_k["base"]] == [c[0] for c in y.top_k["base"]]
    sa, sb = alone[-1], together[-1]
    assert isinstance(sb, Summary)
    assert (sa.takeover_positions, sa.finish_reason, sa.n_tokens) == (sb.takeover_positions, sb.finish_reason, sb.n_tokens)


def alone(pair, request):
    return list(generate(pair, request))


# Each group runs together; together they cover every mode, both schedules, budgets, the gate's
# limits, every divergence, sampling with seeds, stop strings and top candidates.
GROUPS = [
    [dict(mode="intervene", threshold=1.0), dict(mode="intervene", threshold=1.0, schedule="lockstep"),
     dict(mode="base"), dict(mode="reasoning")],
    [dict(threshold=0.5, budget=2), dict(threshold=1.5, block_size=3), dict(threshold=0.0),
     dict(threshold=float("inf"))],
    [dict(divergence="js", threshold=0.3), dict(divergence="tv", threshold=0.4, max_position=12),
     dict(divergence="reverse_kl", threshold=1.0, min_base_entropy=2.8)],
    [dict(temperature=0.9, top_p=0.95, seed=5, threshold=1.5), dict(temperature=1.3, top_k=40, seed=6, budget=3),
     dict(mode="reasoning", temperature=0.7, seed=1)],
    [dict(stop=["e"], threshold=1.0), dict(return_top=3, threshold=1.5, budget=4)],
    [dict(threshold=1.0, max_tokens=5), dict(threshold=1.0, max_tokens=90, block_size=8)],
]


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: "+".join(str(len(g))))
def test_generations_together_give_what_they_give_alone(tiny_pair, multi_pair, group):
    for offset in (0, 3):
        requests = [GenerationRequest(**{"prompt": PROMPTS[(i + offset) % len(PROMPTS)], "max_tokens": 40, **s})
                    for i, s in enumerate(group)]
        results = generate_together(multi_pair, requests)
        for request, together in zip(requests, results):
            assert_same(alone(tiny_pair, request), together)


def test_the_same_request_in_every_slot(tiny_pair, multi_pair):
    request = GenerationRequest(prompt="the cat sat on the mat", max_tokens=50, threshold=0.8)
    solo = alone(tiny_pair, request)
    assert solo[-1].n_takeovers > 0
    for together in generate_together(multi_pair, [request] * 4):
        assert_same(solo, together)


def test_rows_of_every_generation_share_one_decode_per_model(multi_pair):
    """Four base-mode generations: each step is one llama_decode holding a row of each."""
    batcher = Batcher()
    slots = Slots(multi_pair, batcher)
    requests = [GenerationRequest(prompt=p, max_tokens=30, mode="base", stop=["\x00"]) for p in PROMPTS[:4]]

    def run_all():
        threads = [threading.Thread(target=lambda r=r: list(slots.generate(r))) for r in requests]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    serve(batcher, run_all)
    stats = batcher.stats
    assert stats.decodes == stats.steps  # one model, one decode per step
    assert stats.widest == 4  # every generation's row in one batch
    assert stats.rows >= 3 * stats.decodes  # nearly every step held (almost) all four


def test_generations_join_and_leave_mid_run(tiny_pair, multi_pair):
    """A long generation keeps going while others start after it and finish before it."""
    long = GenerationRequest(prompt="write a story about a robot", max_tokens=120, threshold=1.0)
    short = GenerationRequest(prompt="abc", max_tokens=6, threshold=0.5, schedule="lockstep")
    late = GenerationRequest(prompt="count to ten", max_tokens=30, threshold=1.5)
    later = GenerationRequest(prompt="tokint", max_tokens=20, mode="reasoning")
    batcher = Batcher()
    slots = Slots(multi_pair, batcher)
    got: dict[str, list] = {}
    threads: list[threading.Thread] = []

    def start(name, request, on_token=None):
        def run():
            events = []
            for event in slots.generate(request):
                events.append(event)
                if on_token and isinstance(event, TokenEvent):
                    on_token(event.position)
            got[name] = events
        thread = threading.Thread(target=run)
        threads.append(thread)
        thread.start()

    def long_token(position):
        if position == 10:
            start("short", short, lambda p: p == 3 and start("later", later))
        if position == 40:
            start("late", late)

    def drive():
        start("long", long, long_token)
        while any(t.is_alive() for t in list(threads)):
            for t in list(threads):
                t.join()

    serve(batcher, drive)
    assert set(got) == {"long", "short", "late", "later"}
    for name, request in (("long", long), ("short", short), ("late", late), ("later", later)):
        assert_same(alone(tiny_pair, request), got[name])
    assert multi_pair.parallel == 4 and slots.in_use == 0


def test_cancelling_one_leaves_the_others_intact(tiny_pair, multi_pair):
    requests = [GenerationRequest(prompt=p, max_tokens=60, threshold=1.0) for p in PROMPTS[:3]]
    cancels = [None, Cancel(), None]

    def on_event(i, event):
        if i == 1 and isinstance(event, TokenEvent) and event.position == 5:
            cancels[1].cancel()

    results = generate_together(multi_pair, requests, cancels, on_event)
    assert_same(alone(tiny_pair, requests[0]), results[0])
    assert_same(alone(tiny_pair, requests[2]), results[2])
    cut = results[1]
    assert cut[-1].finish_reason == "cancelled" and cut[-1].n_tokens <= 8
    solo = tokens_of(alone(tiny_pair, requests[1]))
    assert [t.token_id for t in tokens_of(cut)] == [t.token_id for t in solo[: len(tokens_of(cut))]]


def test_a_bad_request_fails_alone(tiny_pair, multi_pair):
    good = GenerationRequest(prompt="hello there", max_tokens=30, threshold=1.0)
    too_long = GenerationRequest(prompt="a" * 600, raw=True, max_tokens=5)
    results = generate_together(multi_pair, [good, too_long, good])
    assert isinstance(results[1], PromptTooLong)
    assert_same(alone(tiny_pair, good), results[0])
    assert_same(alone(tiny_pair, good), results[2])


def test_no_more_generations_than_slots(multi_pair):
    with pytest.raises(BackendError, match="at once"):
        generate_together(multi_pair, [GenerationRequest(prompt="x", max_tokens=2)] * 5)


def test_a_batch_past_n_batch_is_split(tiny_files):
    """Four drafts of 16 rows with n_batch 32: the scoring rows go in several decodes, never one
    that llama.cpp would abort on, and the tokens are still those of each generation alone."""
    def entry(n_batch):
        return PairEntry("small-batch", ModelEntry("base", path=tiny_files["base"], n_ctx=256, n_batch=n_batch, n_threads=1),
                         ModelEntry("reasoning", path=tiny_files["reasoning"], n_ctx=256, n_batch=n_batch, n_threads=1))

    solo, multi = open_pair(entry(32)), open_pair(entry(32), parallel=4)
    try:
        assert multi.reasoning.n_batch == 32
        requests = [GenerationRequest(prompt=p, max_tokens=60, threshold=4.0, block_size=16) for p in PROMPTS[:4]]
        batcher = Batcher()
        slots = Slots(multi, batcher)
        results = {}

        def run_all():
            threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, list(slots.generate(requests[i]))))
                       for i in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        serve(batcher, run_all)
        for i, request in enumerate(requests):
            assert_same(alone(solo, request), results[i])
        assert batcher.stats.widest <= 32
        assert batcher.stats.decodes > batcher.stats.steps  # some steps needed two decodes for one model
    finally:
        solo.close()
        multi.close()


def test_every_sequence_has_the_whole_n_ctx(tiny_files):
    """parallel x n_ctx cells: three generations each fill their own 256 positions."""
    entry = PairEntry("ctx", ModelEntry("base", path=tiny_files["base"], n_ctx=256, n_threads=1),
                      ModelEntry("reasoning", path=tiny_files["reasoning"], n_ctx=256, n_threads=1))
    solo, multi = open_pair(entry), open_pair(entry, parallel=3)
    try:
        assert multi.base.n_ctx == solo.base.n_ctx == 256 and multi.base.n_cells >= 3 * 256
        assert multi.context_bytes() >= 3 * solo.context_bytes() > 0
        requests = [GenerationRequest(prompt="a" * 200, raw=True, max_tokens=500, threshold=t, stop=["\x00"])
                    for t in (0.5, 1.0, float("inf"))]
        for request, together in zip(requests, generate_together(multi, requests)):
            single = alone(solo, request)
            assert single[-1].finish_reason == "length" and single[-1].n_tokens > 40
            assert_same(single, together)
    finally:
        solo.close()
        multi.close()


def test_sequences_of_one_context_keep_to_themselves(tiny_files):
    settings = ModelSettings(path=tiny_files["base"], n_ctx=128, n_threads=1)
    solo, multi = LlamaModel(settings), LlamaModel(settings, n_seq=3)
    try:
        a = multi.tokenize("one two three four", add_special=False, parse_special=False)
        b = multi.tokenize("the cat sat on the mat", add_special=False, parse_special=False)
        # a prompt is decoded in a batch of its own: the same logits as in a context of its own
        np.testing.assert_array_equal(multi.prefill(a, seq=2), solo.prefill(a))
        multi.prefill(b, seq=0)
        together = multi.decode_batch([(0, [5, 6], None), (2, [7], [0])])
        assert [x.shape for x in together] == [(2, multi.n_vocab), (1, multi.n_vocab)]
        np.testing.assert_allclose(together[1][0], solo.decode([7], [0])[0], atol=1e-3)
        assert (multi.seq_n_past(0), multi.seq_n_past(1), multi.seq_n_past(2)) == (len(b) + 2, 0, len(a) + 1)
        multi.truncate(len(b), seq=0)  # rolling one sequence back leaves the others alone
        np.testing.assert_allclose(multi.decode([8], [0], seq=2), solo.decode([8], [0]), atol=1e-3)
        assert multi.seq_n_past(2) == len(a) + 2 and multi.seq_n_past(0) == len(b)
        # parts out of sequence order (decoded in order, for speed) come back in the order given
        n0, n2 = multi.seq_n_past(0), multi.seq_n_past(2)
        in_order = multi.decode_batch([(0, [9], [0]), (2, [9, 10], [1])])
        assert not np.allclose(in_order[0], in_order[1], atol=1e-2)
        multi.truncate(n0, seq=0)
        multi.truncate(n2, seq=2)
        given = multi.decode_batch([(2, [9, 10], [1]), (0, [9], [0])])
        np.testing.assert_allclose(given[0], in_order[1], atol=1e-3)
        np.testing.assert_allclose(given[1], in_order[0], atol=1e-3)
        with pytest.raises(BackendError, match="once"):
            multi.decode_batch([(0, [5], None), (0, [6], None)])
        with pytest.raises(BackendError, match="sequence 3"):
            multi.decode([5], seq=3)
    finally:
        solo.close()
        multi.close()


def test_errors_and_results_cross_threads_through_the_batcher(tiny_files):
    model = LlamaModel(ModelSettings(path=tiny_files["base"], n_ctx=64, n_threads=1), n_seq=2)
    batcher = Batcher()
    try:
        def work():
            assert batcher.call(lambda x: x + 1, 1) == 2
            with pytest.raises(ZeroDivisionError):
                batcher.call(lambda: 1 / 0)
            batcher.call(model.prefill, [5] * 60, 1)
            with pytest.raises(BackendError, match="context is full"):
                batcher.decode(model, 1, [6] * 10)
            return batcher.decode(model, 0, [5, 6, 7], [2]).shape

        assert serve(batcher, work) == (1, model.n_vocab)
    finally:
        model.close()


TOPICS = ["reverses a string", "sums a list of numbers", "finds the largest item of a list", "checks for a palindrome",
          "counts the words in a text", "computes a factorial", "merges two dictionaries", "removes duplicates from a list",
          "converts Celsius to Fahrenheit", "checks whether a year is a leap year", "computes the greatest common divisor",
          "flattens a nested list", "sorts a list of pairs by their second item"]
TEMPLATES = ["Write a Python function that {}.", "Write a JavaScript function that {}.",
             "Explain in two sentences how to write a function that {}.", "Write a Rust function that {}."]


@pytest.mark.real
@pytest.mark.timeout(1200)  # 52 prompts twice on the real pair: minutes on 2 cores
def test_real_pair_together_differs_from_alone_only_at_near_ties(real_pair):
    """52 greedy prompts, four at a time (a new one joins as one ends), against each alone. A batch of
    several sequences rounds differently from one sequence's (docs/PERFORMANCE.md), so a response may
    part from its solo run, but only where the decision was a near tie: a divergence within 0.25 nats
    of the threshold, or two candidates within 0.1 in probability."""
    from conftest import REAL_BASE, REAL_REASONING
    from tokint_local.slots import map_on_slots

    threshold = 1.0
    entry = PairEntry("qwen2.5-coder", ModelEntry("base", path=REAL_BASE, n_ctx=1024, n_threads=2),
                      ModelEntry("reasoning", path=REAL_REASONING, n_ctx=1024, n_threads=2))
    weights = {str(REAL_BASE): real_pair.base.weights, str(REAL_REASONING): real_pair.reasoning.weights}
    multi = open_pair(entry, lambda s: weights[str(s.path)], parallel=4)
    requests = [GenerationRequest(prompt=t.format(topic), max_tokens=24, threshold=threshold, return_top=2)
                for t in TEMPLATES for topic in TOPICS]
    try:
        together = map_on_slots(multi, lambda slot, r: list(generate(slot, r)), requests)
    finally:
        multi.close()
    differ = []
    for request, events in zip(requests, together):
        a, b = tokens_of(alone(real_pair, request)), tokens_of(events)
        first = next((i for i, (x, y) in enumerate(zip(a, b)) if (x.token_id, x.source) != (y.token_id, y.source)), None)
        for x, y in zip(a[:first], b[:first]):
            if x.divergence is not None:
                assert abs(x.divergence - y.divergence) < 0.25
        if first is None:
            assert len(a) == len(b)
            continue
        x, y = a[first], b[first]
        near_threshold = any(abs(e.divergence - threshold) < 0.25 for e in (x, y) if e.divergence is not None)
        near_tie = any(abs(c[0][2] - c[1][2]) < 0.1 for e in (x, y) for c in e.top_k.values())
        assert near_threshold or near_tie, (request.prompt, first, x, y)
        differ.append((request.prompt, first))
    print(f"real pair, 4 at a time: {len(differ)} of {len(requests)} responses differ from their solo run, "
          f"each first at a near tie: {differ}")
    assert len(differ) <= len(requests) // 2


SWEEP = """
import json, sys
sys.path.insert(0, {root!r})
from pathlib import Path
from tokint_local.config import ModelEntry, PairEntry
from tokint_local.errors import PromptTooLong
from tokint_local.events import GenerationRequest
from tokint_local.pair import open_pair
from tokint_local.slots import generate_together
n_ctx, n_batch = {n_ctx}, {n_batch}
entry = PairEntry("edge", ModelEntry("base", path=Path({base!r}), n_ctx=n_ctx, n_batch=n_batch, n_threads=1),
                  ModelEntry("reasoning", path=Path({reasoning!r}), n_ctx=n_ctx, n_batch=n_batch, n_threads=1))
pair = open_pair(entry, parallel=3)
for n in {lengths!r}:
    print(json.dumps({{"n": n, "starting": True}}), flush=True)  # the last line before an abort names it
    kinds = [dict(schedule="block", block_size=64, threshold=1e9), dict(schedule="lockstep", threshold=0.5),
             dict(mode="reasoning")]
    results = generate_together(pair, [GenerationRequest(prompt="x" * n, raw=True, max_tokens=80, **k) for k in kinds])
    print(json.dumps({{"n": n, "outcomes": [type(r).__name__ if not isinstance(r, list) else r[-1].n_tokens
                                           for r in results]}}), flush=True)
"""


@pytest.mark.parametrize("n_ctx,n_batch", [(64, 512), (100, 32), (300, 128)], ids=str)
def test_three_at_once_at_the_edges_of_llama_cpps_sizes(tiny_files, n_ctx, n_batch):
    """Prompts around n_batch and n_ctx, three generations at once (one drafting 64 rows past n_batch):
    each is refused or generated, and no batch reaches one of llama.cpp's assertions (which would
    end the child process)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from test_context_limits import prompt_lengths

    lengths = prompt_lengths(n_ctx, n_batch)
    code = SWEEP.format(root=str(Path(__file__).resolve().parent.parent), n_ctx=n_ctx, n_batch=n_batch,
                        base=str(tiny_files["base"]), reasoning=str(tiny_files["reasoning"]), lengths=lengths)
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    lines = [json.loads(line) for line in child.stdout.splitlines() if line.startswith("{")]
    assert child.returncode == 0, f"the child died ({child.returncode}) at {lines[-1] if lines else None}: {child.stderr[-2000:]}"
    results = {r["n"]: r["outcomes"] for r in lines if "outcomes" in r}
    assert sorted(results) == lengths
    for n, outcomes in results.items():
        if n >= n_ctx:
            assert outcomes == ["PromptTooLong"] * 3
        else:
            assert all(isinstance(o, int) and 1 <= o <= 80 for o in outcomes), (n, outcomes)


def test_an_interrupted_batcher_lets_every_waiting_thread_go(tiny_files):
    """Ctrl+C in the middle of a step (eval --local --parallel 2 hung there, its threads waiting
    forever): the decodes of that step, those queued and any sent later all get BackendError."""
    model = LlamaModel(ModelSettings(path=tiny_files["base"], n_ctx=64, n_threads=1), n_seq=3)
    batcher = Batcher()
    real = model.decode_batch
    steps = []

    def interrupted(batch):
        steps.append(len(batch))
        if len(steps) == 2:
            raise KeyboardInterrupt  # as a signal lands between two llama.cpp calls
        return real(batch)

    model.decode_batch = interrupted
    outcomes = {}

    def one(seq):
        with batcher.member():
            try:
                batcher.decode(model, seq, [1, 2])
                batcher.decode(model, seq, [3])
                outcomes[seq] = "done"
            except BackendError as exc:
                outcomes[seq] = str(exc)

    threads = [threading.Thread(target=one, args=(seq,), daemon=True) for seq in range(3)]
    for thread in threads:
        thread.start()
    with pytest.raises(KeyboardInterrupt):
        serve(batcher, lambda: [thread.join() for thread in threads])
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()
    assert outcomes == {seq: "the batcher stopped" for seq in range(3)} and len(steps) == 2
    with pytest.raises(BackendError, match="stopped"):
        batcher.decode(model, 0, [4])
    batcher.post(print, "dropped")  # posted work after the end is dropped, not raised in the poster
    model.close()

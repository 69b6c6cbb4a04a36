"""KV-cache prefix reuse in conversations, on the real pair: time to first token and faithfulness.

    python bench/chat_reuse.py [--threads 2] [--conversations 20] [--turns 3] [--tokens 24] [--repeats 3]

In one process (the real qwen2.5-coder pair, n_ctx 4096, intervene mode, greedy, block schedule):

1. Time to first token at the 8th turn of a conversation with about 2,000 tokens of history: seven
   turns in which the person pastes code to review (about 200 tokens each) and the pair answers
   (--history-tokens each), every turn reusing the caches as a chat does; then the 8th turn, with
   reuse and with a full prefill (reuse_prefix false), --repeats times each, the caches put back
   to "after turn 7" before every reuse run. TTFT is the engine's time_to_first_token_s (prompt
   processing and the first decision).
2. Faithfulness: --conversations conversations of --turns turns (short questions, --tokens per
   answer), answered with reuse; then every turn again from scratch (the same messages, reuse off).
   Counts the turns whose tokens differ and where they first differ.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import git_rev, machine, real_pair, require_models, table  # noqa: E402
from tokint_local.engine import generate  # noqa: E402
from tokint_local.events import GenerationRequest, Summary, TokenEvent  # noqa: E402

SYSTEM = "You are a careful senior Python reviewer. Answer briefly."
FIRST_QUESTIONS = [
    "Write a Python function that checks whether a string is a palindrome.",
    "Write a Python function that returns the second largest number in a list.",
    "How do I read a CSV file in Python without pandas?",
    "Write a Python function that flattens a nested list.",
    "What is the difference between a list and a tuple in Python?",
    "Write a Python generator that yields the Fibonacci numbers.",
    "How do I reverse a dictionary (values to keys) in Python?",
    "Write a Python function that counts the words in a text.",
    "Explain Python decorators with a short example.",
    "Write a Python function that merges two dictionaries.",
    "How do I remove duplicates from a list but keep the order?",
    "Write a Python class for a simple bank account.",
    "Write a Python function that checks whether a number is prime.",
    "How do I sort a list of dictionaries by a key?",
    "Write a Python function that computes the factorial recursively.",
    "What does the `with` statement do in Python?",
    "Write a Python function that finds the most common element in a list.",
    "How do I measure how long a Python function takes?",
    "Write a Python function that converts Celsius to Fahrenheit.",
    "Write a Python function that chunks a list into pieces of size n.",
    "How do I parse JSON from a string in Python?",
    "Write a binary search in Python.",
]
FOLLOW_UPS = [
    "Now add type hints to it.",
    "What is its time complexity? One sentence.",
    "Rename things to be clearer and show it again.",
    "Add a docstring.",
    "How would you test it? Give one assert.",
]


def run_turn(pair, messages, reuse, max_tokens):
    events = list(generate(pair, GenerationRequest(messages=messages, reuse_prefix=reuse, max_tokens=max_tokens)))
    summary = events[-1]
    assert isinstance(summary, Summary)
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    return [e.token_id for e in tokens], "".join(e.text for e in tokens), summary


def code_chunks(n, chars=720):
    """Pieces of this project's own source, as a person would paste code into a chat."""
    text = "".join((ROOT / "tokint_local" / name).read_text() for name in ("divergence.py", "gate.py", "sampling.py"))
    return [text[i * chars:(i + 1) * chars] for i in range(n)]


def ttft_at_turn_8(pair, history_tokens, repeats):
    chunks = code_chunks(8)
    messages = [{"role": "system", "content": SYSTEM}]
    for turn in range(7):
        messages.append({"role": "user", "content": f"Review this part of my code:\n```python\n{chunks[turn]}\n```"})
        _, text, _ = run_turn(pair, messages, True, history_tokens)
        messages.append({"role": "assistant", "content": text})
    eighth = messages + [{"role": "user", "content": f"And this last part:\n```python\n{chunks[7]}\n```"}]
    before = messages[:-1]  # up to turn 7's question: answering it again puts the caches back to "after turn 7"
    reuse, full, sizes, cached = [], [], None, None
    for _ in range(repeats):
        run_turn(pair, before, True, history_tokens)
        _, _, s = run_turn(pair, eighth, True, 1)
        reuse.append(s.time_to_first_token_s)
        cached = s.cached_tokens
        _, _, s = run_turn(pair, eighth, False, 1)
        full.append(s.time_to_first_token_s)
        sizes = s.prompt_tokens
    return {"prompt_tokens": sizes, "cached_tokens": cached, "ttft_reuse_s": reuse, "ttft_full_s": full}


def faithfulness(pair, n_conversations, n_turns, max_tokens):
    results = []
    for c in range(n_conversations):
        questions = [FIRST_QUESTIONS[c % len(FIRST_QUESTIONS)]] + [FOLLOW_UPS[(c + t) % len(FOLLOW_UPS)] for t in range(n_turns - 1)]
        messages = [{"role": "system", "content": SYSTEM}]
        turns = []
        for question in questions:
            messages.append({"role": "user", "content": question})
            tokens, text, summary = run_turn(pair, messages, True, max_tokens)
            turns.append((list(messages), tokens, summary.cached_tokens))
            messages.append({"role": "assistant", "content": text})
        for turn, (asked, tokens, cached) in enumerate(turns):
            scratch, _, _ = run_turn(pair, asked, False, max_tokens)
            first = next((i for i, (a, b) in enumerate(zip(tokens, scratch)) if a != b),
                         None if len(tokens) == len(scratch) else min(len(tokens), len(scratch)))
            results.append({"conversation": c, "turn": turn, "cached": cached, "first_difference": first,
                            "n_tokens": len(tokens)})
        print(f"  conversation {c + 1}/{n_conversations}: "
              + ", ".join("same" if r["first_difference"] is None else f"differs at {r['first_difference']}"
                          for r in results[-n_turns:]), file=sys.stderr, flush=True)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--conversations", type=int, default=20)
    ap.add_argument("--turns", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=24, help="answer length in the faithfulness conversations")
    ap.add_argument("--history-tokens", type=int, default=48, help="answer length in the 8-turn conversation")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    require_models()
    pair = real_pair(args.threads, n_ctx=4096)
    print(f"machine: {machine()}; commit {git_rev()}; threads {args.threads}", file=sys.stderr)
    print("1. time to first token at turn 8 ...", file=sys.stderr, flush=True)
    ttft = ttft_at_turn_8(pair, args.history_tokens, args.repeats)
    print("2. reuse against from-scratch runs ...", file=sys.stderr, flush=True)
    turns = faithfulness(pair, args.conversations, args.turns, args.tokens)
    pair.close()
    reuse, full = statistics.median(ttft["ttft_reuse_s"]), statistics.median(ttft["ttft_full_s"])
    later = [r for r in turns if r["turn"] > 0]
    differ = [r for r in turns if r["first_difference"] is not None]
    conversations_differ = {r["conversation"] for r in differ}
    report = {
        "ttft": {**ttft, "median_reuse_s": reuse, "median_full_s": full, "speedup": full / reuse},
        "faithfulness": {
            "conversations": args.conversations, "turns": len(turns), "turns_after_the_first": len(later),
            "turns_differing": len(differ), "conversations_differing": len(conversations_differ),
            "first_differences": [r["first_difference"] for r in differ],
            "per_turn": turns,
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"\nTTFT at turn 8, prompt tokens {ttft['prompt_tokens']}, from the caches with reuse {ttft['cached_tokens']}:\n")
    print(table(["prefill", "TTFT median (s)", "runs (s)"], [
        ["reuse (the cache's prefix)", reuse, ", ".join(f"{t:.2f}" for t in ttft["ttft_reuse_s"])],
        ["full (from position 0)", full, ", ".join(f"{t:.2f}" for t in ttft["ttft_full_s"])],
    ]))
    print(f"\nspeedup: {full / reuse:.1f}x\n")
    print(table(["conversations", "turns compared", "turns differing", "conversations differing", "first differing positions"], [
        [args.conversations, len(turns), len(differ), len(conversations_differ),
         ", ".join(str(r["first_difference"]) for r in differ) or "-"],
    ]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

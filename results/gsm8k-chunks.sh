#!/usr/bin/env bash
# The GSM8K run of docs/RESULTS.md section 5, in chunks: each chunk runs the same first N items in all
# eight configurations, so that stopping anywhere leaves the configurations comparable on the items of
# the last finished chunk (`tokint eval --report --dataset gsm8k --limit N`). Resumable: the results
# file skips what it holds. Usage, from the repository root:
#   LOCK=../shared/llama-lock bash results/gsm8k-chunks.sh [N ...]     (default: 24 36 48 ... 240 250; a chunk
#   the file holds whole reports without loading a model, so the default picks up where the run stopped)
# then `.venv/bin/python results/gsm8k_docs.py N` (N: the last chunk done) regenerates the docs' numbers.
set -u
LOCK=${LOCK:-}
T=${TOKINT:-.venv/bin/tokint}
OUT=results/gsm8k-qwen2.5-coder.jsonl
RUN=($T eval --local --parallel 4 --dataset gsm8k --out $OUT)
for N in "${@:-$(seq 24 12 240) 250}"; do
  for n in $N; do
    $LOCK "${RUN[@]}" --limit $n --modes base,reasoning,intervene --budgets 4,16,inf --threshold 0.575 || exit
    $LOCK "${RUN[@]}" --limit $n --modes intervene --budgets 4 --gate entropy --threshold 1.0610383387074975 || exit
    $LOCK "${RUN[@]}" --limit $n --modes intervene --budgets 4 --gate top1 --threshold 0.5973536372184753 || exit
    $LOCK "${RUN[@]}" --limit $n --modes intervene --budgets 4 --gate random --threshold 0.059 || exit
    echo "gsm8k: chunk $n done $(date)"
  done
done

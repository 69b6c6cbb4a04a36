"""Regenerate every GSM8K number in the docs from the results file, for the first N items (a
finished chunk of results/gsm8k-chunks.sh): docs/RESULTS.md section 5's head (status, table,
reading, the per-chunk history table), the claims table's math column, the analysis section's
takeover row and sentence, and README's headline. Every number comes from
`tokint eval --report --json` on the committed results file; review the diff before committing.
Usage, from the repository root:  .venv/bin/python results/gsm8k_docs.py N"""
import json, re, subprocess, sys
from pathlib import Path

N = int(sys.argv[1])
DONE = N >= 250  # the minimum: the docs then speak of a finished run, not one in progress
SO_FAR = "" if DONE else " so far"
root = Path(__file__).resolve().parents[1]
OUT = "results/gsm8k-qwen2.5-coder.jsonl"


def report(n, js=True):
    cmd = [sys.executable, "-m", "tokint_local.cli", "eval", "--report", "--dataset", "gsm8k", "--limit", str(n), "--out", OUT]
    out = subprocess.run(cmd + (["--json"] if js else []), cwd=root, capture_output=True, text=True, check=True).stdout
    return {d["config"]: d for d in map(json.loads, out.splitlines())} if js else out


S = report(N)
table_text = "\n".join(l for l in report(N, js=False).rstrip("\n").splitlines() if not l.startswith("vs "))
b4, b16, binf = (f"intervene/budget={b}/threshold=0.575" for b in ("4", "16", "inf"))
ent, top, rnd = (next(k for k in S if k.endswith("gate=" + g)) for g in ("entropy", "top1", "random"))
CONTROLS = (("entropy", ent), ("top-1", top), ("random", rnd))


def n(k, s=S): d = s[k]; return round(d["accuracy"] * d["n_items"])
def acc(k): return f"{n(k)}/{N}"
def P(x): return "p<0.001" if x < 0.001 else f"p={x:.3f}"
def vsb(k): d = S[k]; return f"+{d['fixed_vs_base']}/-{d['broken_vs_base']}, {P(d['p_vs_base'])}"
def vsd(k, s=S): d = s[k]; return f"+{d['fixed_vs_divergence']}/-{d['broken_vs_divergence']}"
def pct(k, f="delegated_share"): return f"{100 * S[k][f]:.1f}%"
def early(k): return f"{100 * S[k]['early_takeover_share']:.0f}%"


b4s = [S[k]["takeovers_per_response"] for k in (b4, ent, top, rnd)]
b4_range = f"{min(b4s):.2f}-{max(b4s):.2f}"
gap = n("reasoning") - n("base")
ps = [S[k]["p_vs_divergence"] for _, k in CONTROLS]
prange = f"p = {min(ps):.2g}-{max(ps):.2g}" if min(ps) != max(ps) else f"p = {ps[0]:.2g}"
sig = [g for g, k in CONTROLS if S[k]["p_vs_divergence"] < 0.05]
ALPHA = 0.05 / len(CONTROLS)  # three controls compared with one gate: Bonferroni's bound for any of them
strong = [g for g, k in CONTROLS if S[k]["p_vs_divergence"] < ALPHA]
weak = [g for g in sig if g not in strong]  # p < 0.05, but not once the three comparisons are counted
leads = {g: n(b4) - n(k) for g, k in CONTROLS}


def lead_words():
    parts = []
    for g, d in leads.items():
        parts.append(f"{g} by {d} item{'s' if abs(d) != 1 else ''}" if d > 0 else f"{g} {'ties it' if d == 0 else f'leads it by {-d}'}")
    return ", ".join(parts)


close = max(leads["entropy"], leads["top-1"]) <= 2
uncertain = ("yet pass nearly as many items: on these models, uncertainty alone finds most of the decisions the\n"
             "  reasoning model's disagreement finds" if close else "and pass fewer items")
random_words = (f"Placing the takeovers at random recovers {'nothing' if n(rnd) <= n('base') else 'little'} over base "
                f"({acc(rnd)} against {acc('base')})" if n(rnd) - n("base") <= 1 else
                f"At random they reach {acc(rnd)} against base's {acc('base')}")
if sig:
    verdict = (f"p < 0.05 against {', '.join(sig)}{SO_FAR}, not against the others"
               + (f";\n  with three controls compared, {', '.join(weak)} does not clear the corrected bound p < {ALPHA:.3f}"
                  if weak else ""))
else:
    verdict = "no control differs significantly from it at this size"

# the history: the same report at every chunk so far
hist_rows, hist_leads = [], {}  # hist_leads: items -> the gate's lead over entropy, top-1, random
for m in sorted({*range(24, N, 12), 30, N}):  # every 12 items; 30, where the text below cites random's p = 0.039
    s = report(m)
    e, t, r = (next(k for k in s if k.endswith("gate=" + g)) for g in ("entropy", "top1", "random"))
    hist_rows.append(f"| {m} | {n('base', s)} | {n('reasoning', s)} | {n(b4, s)} | {n(e, s)} ({vsd(e, s)}) | "
                     f"{n(t, s)} ({vsd(t, s)}) | {n(r, s)} ({vsd(r, s)}) |")
    hist_leads[m] = tuple(n(b4, s) - n(k, s) for k in (e, t, r))
low = min((m for m in hist_leads if m >= 60), key=lambda m: sum(hist_leads[m]))  # where the lead was smallest
moved = (f"it was {'/'.join(map(str, hist_leads[30]))} items over entropy/top-1/random at 30 items, smallest at {low} "
         f"({'/'.join(map(str, hist_leads[low]))}), and {'/'.join(map(str, hist_leads[N]))} at {N}")
history = "\n".join(["| items | base | reasoning | divergence, budget 4 | entropy (vs divergence) | top-1 (vs divergence) | random (vs divergence) |",
                     "|---|---|---|---|---|---|---|", *hist_rows])

BUILDS = """The sessions ran on
different machines and llama.cpp builds (from item 199 on, one built without AMX: README, "Illegal
instruction"). Kernels differ between builds (as between batch sizes), so a token near a tie may come out
otherwise; the run compares configurations item by item, not builds. Every record was checked again
after the run with the checker as it now is, which fails a response cut off by the length limit with no box
or marker (its last number is one of its steps): 2 of the 2,000 verdicts changed (unlimited budget and
top-1, one item each, from pass to fail)."""
status = (f"""**Status: the first {N} GSM8K test
items in all eight configurations** (one item is {100 / N:.1f} points). The run was resumable and ran in
chunks of 12 items over several sessions (`results/gsm8k-chunks.sh`); `results/gsm8k-qwen2.5-coder.jsonl`
holds every response. One item in all eight configurations cost about 3 minutes with `--parallel 4`
(about 40 minutes per chunk; responses of 200-400 tokens, the reasoning model at 3-10 tok/s), so the {N}
items took about 12.5 hours of machine time. {BUILDS}""" if DONE else
          f"""**Status: the first {N} GSM8K
test items in all eight configurations; too few to conclude much** (one item is {100 / N:.1f} points). The run is
resumable and continues in chunks (the commands below); `results/gsm8k-qwen2.5-coder.jsonl` holds every
response. On this machine one item in all eight configurations costs about 3 minutes with `--parallel 4`
(about 40 minutes per chunk of 12 items; responses of 200-400 tokens, the reasoning model at 3-10 tok/s), so
250 items are about 12.5 hours of machine time, several sessions. {BUILDS}""")
head = f"""## 5. Math: GSM8K and AIME 2025{'' if DONE else f' (in progress: {N} of 250 GSM8K items)'}

The paper's own domain, with the controls that test its claim (issue 18). {status}

Thresholds: divergence 0.575 nats (KL), which takes over 5.9% of the tokens without a budget on the first
items. The controls were calibrated to that share on the base model's responses to the first 4 items
(`tokint calibrate --dataset gsm8k --limit 4 --rate 0.059 --gate G`): entropy 1.061 nats, top-1
probability 0.597 (Nudging's rule), random probability 0.059, each item drawing its own random positions
(seed 0 and the item's id). At budget 4 every gate spends its whole budget ({b4_range} takeovers per
response), so the four are matched in takeovers per response.

```
tokint eval --report --dataset gsm8k --limit {N} --out results/gsm8k-qwen2.5-coder.jsonl

{table_text}
```

(`vs base`: items a configuration passes where base fails, and the reverse, with the exact sign test's
p; `vs divergence`: the same for a control against the divergence gate at budget 4. Tokens/s are per
generation with four in flight, two threads; the first 12 items ran on one thread per model beside
other work, so they are rough.)

{f"What the {N} items say:" if DONE else f"What the {N} items say so far, to be confirmed or dropped at 250:"}

- **The base model is weak at grade-school math, the reasoning model much stronger**: {acc('base')}
  against {acc('reasoning')} ({vsb('reasoning')}).
- **Four divergence-chosen takeovers per response recover {n(b4) - n('base')} of the {gap} items between them**:
  {acc(b4)} with {pct(b4)} of the tokens taken over ({vsb(b4)}); budgets 16 and unlimited reach
  {acc(b16)} and {acc(binf)}, at {pct(b16)} and {pct(binf)} of the tokens ({vsb(b16)} and {vsb(binf)}): as on
  code, the first four takeovers recover part of the gap ({n(b4) - n('base')} of {gap} items) and unlimited
  takeovers {'most' if 2 * (n(binf) - n('base')) > gap else 'part'} of it ({n(binf) - n('base')} of {gap}).
- **Four takeovers placed by a control**: entropy {acc(ent)}, top-1 probability {acc(top)}, random
  {acc(rnd)}, against the divergence gate's {acc(b4)} on the same items (each control against the
  divergence gate, items it passes where the gate fails / the reverse: entropy {vsd(ent)},
  {P(S[ent]['p_vs_divergence'])}; top-1 {vsd(top)}, {P(S[top]['p_vs_divergence'])}; random {vsd(rnd)},
  {P(S[rnd]['p_vs_divergence'])}). The divergence gate is ahead of {lead_words()}; {verdict}. The entropy
  and top-1 controls spend their budget on the first uncertain tokens ({early(ent)} and {early(top)} of their
  takeovers in the first tenth of the response, against {early(b4)} for the divergence gate), {uncertain}.
  {random_words}.
- **How the comparison moved with the sample** (`--limit` at each chunk): the divergence gate's early
  lead over the controls (at 30 items random trailed it at p = 0.039) {'has narrowed' if close else 'has moved'} as items came in:
  {moved}.

{history}

- The random control first ran with one draw of positions for every item (a seed shared by all items:
  every response's takeovers at the same four positions); those 12 records are kept in
  `results/gsm8k-qwen2.5-coder-random-shared-positions.jsonl` (4/12) and were re-run with a draw per item.
"""
p = root / "docs/RESULTS.md"
s = p.read_text()
start, end = s.index("## 5. Math:"), s.index("### Where the models disagree on math")
s = s[:start] + head + "\n" + s[end:]
s = re.sub(r"\| Here, math \(GSM8K, first \d+ items; section 5\) \|", f"| Here, math (GSM8K, first {N} items; section 5) |", s)
s = re.sub(r"\| \*\*Partly(?:, so far)?\.\*\* Budget 4 .*? \|\n",
           f"| **Partly{',' if SO_FAR else ''}{SO_FAR}.** Budget 4 ({pct(b4)} of the tokens) recovers {n(b4) - n('base')} of the {gap} items between base "
           f"({acc('base')}) and reasoning ({acc('reasoning')}); unlimited intervention ({pct(binf)}) recovers {n(binf) - n('base')}. |\n", s)
close_note = "; uncertainty alone finds most of what the divergence finds" if close else ""
claim = (f"**Holds against {', '.join(strong)}{SO_FAR}.**" if strong else
         f"**Weakly, against {', '.join(weak)} only{SO_FAR}.**" if weak else f"**Not shown{SO_FAR}.**")
s = re.sub(r"\| \*\*(?:Holds so far against all three controls|The direction holds against all three controls so far|Leaning that way, not significant yet|Not shown(?: so far)?|Holds against [^*]*|Weakly, against [^*]*)\.\*\* .*? \|\n",
           f"| {claim} Four takeovers placed by base entropy, by top-1 probability (Nudging) or at random score {n(ent)}, {n(top)} and "
           f"{n(rnd)} of {N} against the divergence gate's {n(b4)} ({prange} item by item){close_note}. |\n", s)
s = re.sub(r"\| takeovers in the first tenth of the response \(eval, first \d+ items; budget 4 / 16 / unlimited\) \| [^|]* \|",
           f"| takeovers in the first tenth of the response (eval, first {N} items; budget 4 / 16 / unlimited) | {early(b4)} / {early(b16)} / {early(binf)} |", s)
s, k = re.subn(r"Their takeovers land much earlier than the divergence gate's at budget 4 \([^)]*\)",
               f"Their takeovers land much earlier than the divergence gate's at budget 4 ({early(ent)} and {early(top)} in\n  the first tenth against {early(b4)}, first {N} items; the random control's {early(rnd)} is where its four draws fall)", s)
assert k == 1, "the analysis sentence on early takeovers was not found"
s = re.sub(r"(90% of the divergence is in [\d.]+% of tokens; unlimited intervention delegates )[\d.]+%",
           lambda m: m.group(1) + pct(binf), s)
p.write_text(s)

sig_words = ("significant against " + ", ".join(strong) if strong else
             f"p < 0.05 against {', '.join(weak)} only, not once the three comparisons are counted" if weak else "none significant")
p = root / "README.md"
s = p.read_text()
start, end = s.index("threshold 1.0). On GSM8K math,"), s.index("and caveats: [docs/RESULTS.md](docs/RESULTS.md).")
s = s[:start] + f"""threshold 1.0). On GSM8K math, the paper's own domain{f" (the first {N} test items)" if DONE else f", the run has reached {N} of 250 items"}: base {acc('base')},
reasoning {acc('reasoning')}, four divergence-chosen takeovers per response ({pct(b4)} of the tokens) {acc(b4)},
unlimited takeovers ({pct(binf)}) {acc(binf)}; four takeovers placed by base entropy, by top-1 probability or
at random score {n(ent)}, {n(top)} and {n(rnd)} of {N}: the divergence gate is ahead of {lead_words()},
{sig_words} ({prange} item by item). Commands, analysis
""" + s[end:]
p.write_text(s)
print("ok", N, prange, leads, sig)

"""Rewrite the numbers of docs/RESULTS.md's "Where the models disagree on math" (and the claims rows that cite
them) from a new `tokint analyze --dataset gsm8k ... --json` output, replacing the figures of the JSON the section
cites now (docs/results/analysis-gsm8k.json). Every replacement must find its text exactly once, else it stops.
The top-token list and the rounded "half the divergence is in 3% of the tokens, 90% in 14%" are left to a hand.
Usage, from the repository root (then review the diff, and copy NEW.json over docs/results/analysis-gsm8k.json):
  python3 results/gsm8k_analysis_docs.py docs/results/analysis-gsm8k.json NEW.json docs/RESULTS.md"""
import json, re, sys
old, new = (json.load(open(a)) for a in sys.argv[1:3])
path = sys.argv[3]
s = open(path).read()

def figs(d):
    p = d["position_profile"]; sp = d["sparsity"]; pl = d["planning"]; c = d["entropy_correlation"]
    return dict(n=d["n_responses"], tokens=f"{d['n_tokens']:,}", mean=f"{d['mean_divergence']:.3f}",
                above=f"{100*d['share_above_threshold']:.1f}%", s50=f"{100*sp['50%']:.1f}", s80=f"{100*sp['80%']:.1f}",
                s90=f"{100*sp['90%']:.1f}", profile=[f"{x:.3f}" for x in p], fifth=f"{sum(p[:2])/2:.2f}",
                last=f"{sum(p[6:])/4:.3f}", pall=f"{100*pl['share_of_all_tokens']:.1f}%",
                phigh=f"{100*pl['share_of_high_divergence_tokens']:.1f}%", enr=f"{pl['enrichment']:.1f}x",
                pear=f"{c['pearson']:.2f}", spear=f"{c['spearman']:.2f}")
O, N = figs(old), figs(new)
count = 0
def sub(a, b, n=1):
    global s, count
    k = s.count(a)
    assert k == n, (a, k)
    s = s.replace(a, b); count += 1

sub(f"first {O['n']} GSM8K responses (from\nthe eval above; {O['tokens']} tokens)", f"first {N['n']} GSM8K responses (from\nthe eval above; {N['tokens']} tokens)")
sub(f"--dataset gsm8k --limit {O['n']} --from-results", f"--dataset gsm8k --limit {N['n']} --from-results")
sub(f"| GSM8K ({O['n']} responses) |", f"| GSM8K ({N['n']} responses) |")
sub(f"| mean divergence | {O['mean']} nats |", f"| mean divergence | {N['mean']} nats |")
sub(f"| {O['above']} (at 0.575) |", f"| {N['above']} (at 0.575) |")
sub(f"| **{O['s50']}% / {O['s80']}% / {O['s90']}%** |", f"| **{N['s50']}% / {N['s80']}% / {N['s90']}%** |")
top2 = sorted(range(10), key=lambda i: -float(N["profile"][i]))[:2]
prof = ", ".join(f"**{v}**" if i in top2 else v for i, v in enumerate(N["profile"]))
prof = prof.replace("**, **", ", ")
s, k = re.subn(r"\| mean divergence by tenth of the response \| [^|]* \|", f"| mean divergence by tenth of the response | {prof} |", s, count=1); assert k == 1
sub(f"| {O['pall']} / {O['phigh']}: **{O['enr']} enriched** |", f"| {N['pall']} / {N['phigh']}: **{N['enr']} enriched** |")
sub(f"| Pearson {O['pear']}, Spearman **{O['spear']}** |", f"| Pearson {N['pear']}, Spearman **{N['spear']}** |")
sub(f"(the figures moved little from the first 19 responses to {O['n']}: sparsity 3.0/8.9/13.4% to\n3.1/9.3/14.1%, enrichment 2.3x to 2.2x, Spearman 0.96 to 0.95)",
    f"(the figures from the first 19, 84 and {N['n']} responses: sparsity 3.0/8.9/13.4%, 3.1/9.3/14.1% and\n{N['s50']}/{N['s80']}/{N['s90']}%, enrichment 2.3x, 2.2x and {N['enr']}, Spearman 0.96, 0.95 and {N['spear']})")
sub(f"(0.17 nats on average against {O['last']} in the last 40%)", f"({N['fifth']} nats on average against {N['last']} in the last 40%)")
sub(f"**Planning tokens: enriched {O['enr']}, nowhere near 17x.**", f"**Planning tokens: enriched {N['enr']}, nowhere near 17x.**")
sub(f"(Spearman\n  {O['spear']}), which", f"(Spearman\n  {N['spear']}), which")
# the claims table
sub(f"{O['above']} of tokens clear the threshold (0.575); 90% of the divergence is in {O['s90']}% of tokens",
    f"{N['above']} of tokens clear the threshold (0.575); 90% of the divergence is in {N['s90']}% of tokens")
sub(f"(0.17 nats against {O['last']} in the last 40%; {O['n']} responses)", f"({N['fifth']} nats against {N['last']} in the last 40%; {N['n']} responses)")
sub(f"**Weaker: {O['enr']}.** The top tokens", f"**Weaker: {N['enr']}.** The top tokens")
open(path, "w").write(s)
print("rewrote", count + 1, "places; by hand: 'half the divergence is in 3% of the tokens, 90% in 14%', the top-token list, 'three times as much'")
print("top", [(t["text"], round(t["divergence"], 1), round(t["base_entropy"], 3)) for t in new["top_tokens"][:10]])
print(N)

"""PNG figures for analysis and evaluation (matplotlib, imported only when a plot is asked for)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def sparsity_plot(summary: dict, path: Path, title: str = "") -> Path:
    plt = _pyplot()
    xs = [p[0] for p in summary["sparsity_curve"]]
    ys = [p[1] for p in summary["sparsity_curve"]]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(xs, ys, color="#c0392b", lw=2)
    ax.plot([0, 1], [0, 1], color="#999", ls="--", lw=1, label="uniform")
    for level, frac in summary["sparsity"].items():
        ax.axhline(float(level.rstrip("%")) / 100, color="#ddd", lw=0.8)
        ax.annotate(f"{level} in {100 * frac:.1f}% of tokens", (frac, float(level.rstrip("%")) / 100),
                    textcoords="offset points", xytext=(6, -12), fontsize=8)
    ax.set_xlabel("fraction of tokens (highest divergence first)")
    ax.set_ylabel("fraction of total divergence")
    ax.set_title(title or f"Sparsity of divergence ({summary['n_tokens']} tokens)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def position_plot(summary: dict, path: Path, title: str = "") -> Path:
    plt = _pyplot()
    profile = [v if v is not None else 0.0 for v in summary["position_profile"]]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.bar([f"{10 * d}-{10 * d + 10}%" for d in range(10)], profile, color="#2c7fb8")
    ax.set_xlabel("position in the response")
    ax.set_ylabel("mean divergence (nats)")
    ax.set_title(title or "Divergence by position")
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def accuracy_plot(summaries: list[dict], path: Path, title: str = "", dataset: Optional[str] = None) -> Path:
    """Accuracy against budget for each threshold, with the base and reasoning models as lines.

    ``dataset`` names the y-axis's measure: HumanEval's is pass@1 (one greedy response, its tests run);
    any other dataset's is the share of items answered right."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    inter = [s for s in summaries if s["mode"] == "intervene"]
    finite = sorted({s["budget"] for s in inter if s["budget"] is not None})
    inf_x = (max(finite) * 2 if finite else 1)
    rules = sorted({(s.get("gate") or "divergence", s["threshold"]) for s in inter}, key=lambda r: (r[0] != "divergence", r))
    for gate, threshold in rules:
        pts = sorted(((s["budget"] if s["budget"] is not None else inf_x), s["accuracy"]) for s in inter
                     if s["threshold"] == threshold and (s.get("gate") or "divergence") == gate)
        label = f"intervene, threshold {threshold:g}" + ("" if gate == "divergence" else f", {gate} gate")
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o" if gate == "divergence" else "s", label=label)

    for mode, color in (("base", "#7f8c8d"), ("reasoning", "black")):  # apart from the series' own colour cycle
        line: Optional[dict] = next((s for s in summaries if s["mode"] == mode), None)
        if line:
            ax.axhline(line["accuracy"], color=color, ls="--", label=f"{mode} only ({line['accuracy']:.3f})")
    ticks = finite + ([inf_x] if any(s["budget"] is None for s in inter) else [])
    if ticks:
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(t) if t != inf_x else "unlimited" for t in ticks])
    ax.set_xlabel("budget (takeovers per response)")
    ax.set_ylabel("accuracy (pass@1)" if dataset == "humaneval" else "accuracy (share of items right)")
    ax.set_ylim(0, 1.02)  # a share of the items: the whole range, never below 0
    ax.set_title(title or "Accuracy against budget" + (f" ({dataset})" if dataset else ""))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)

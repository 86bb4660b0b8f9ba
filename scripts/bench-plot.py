#!/usr/bin/env python3
"""Draws docs/performance.png from docs/performance.json (written by `make bench`).

Left: the Envoy CPU each gate adds per request, relative to no gate in the same round
(median, with the range over rounds), per scenario. Right: requests per second.
A further panel, when the run had `--profile`, splits the filter's cost; and one, when the run
counted instructions under callgrind (`--instructions`), shows the Envoy instructions each gate
adds per request (HTTP/1.1, allowed traffic). Older JSON without them still plots.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STANDARD = ["a", "b", "c", "d", "e"]
COLOURS = {"a": "tab:gray", "b": "tab:blue", "c": "tab:orange", "d": "tab:green", "e": "tab:red"}


def rows_by(summary):
    return {(r["scenario"], r["variant"]): r for r in summary}


def short(label):
    # "(d) rfma filter, record (filter_state) + strip" -> "(d) rfma filter, record…"
    return label if len(label) <= 48 else label[:47] + "…"


def grouped(ax, rows, scenarios, variants, labels, value, spread=None):
    width = 0.8 / max(len(variants), 1)
    for i, v in enumerate(variants):
        xs, ys, lo, hi = [], [], [], []
        for j, sc in enumerate(scenarios):
            r = rows.get((sc, v))
            if r is None:
                continue
            y = value(r)
            if y is None:
                continue
            xs.append(j + (i - (len(variants) - 1) / 2) * width)
            ys.append(y)
            if spread:
                s = spread(r)
                lo.append(y - s[0])
                hi.append(s[1] - y)
        err = [lo, hi] if spread else None
        ax.bar(xs, ys, width, yerr=err, capsize=2, label=short(labels[v]), color=COLOURS.get(v))
    ax.set_xticks(range(len(scenarios)))
    ax.set_xticklabels(scenarios)
    ax.grid(axis="y", alpha=0.3)


def main(src, dst):
    with open(src) as f:
        data = json.load(f)
    rows = rows_by(data["summary"])
    labels = {v["key"]: v["label"] for v in data["variants"]}
    scenarios = data["scenarios"]
    profile = [k for k in labels if k.startswith("p")]
    instr = {r["variant"]: r for r in ((data.get("instructions") or {}).get("runs") or [])}
    instr_gates = [v for v in STANDARD[1:] if instr.get(v, {}).get("added_vs_a_per_request") is not None]
    panels = 2 + bool(profile) + bool(instr_gates)
    # Four panels in one row would be too wide to read: two rows of two.
    rows_, cols = (2, 2) if panels == 4 else (1, panels)
    fig, grid = plt.subplots(rows_, cols, figsize=(6.5 * cols, 5.2 * rows_), squeeze=False)
    axes = list(grid.flat)

    added = lambda r: (r["added_cpu_us_per_request"] or {}).get("median")  # noqa: E731
    span = lambda r: (  # noqa: E731
        r["added_cpu_us_per_request"]["min"],
        r["added_cpu_us_per_request"]["max"],
    )
    gates = [v for v in STANDARD[1:] if v in labels]
    grouped(axes[0], rows, scenarios, gates, labels, added, span)
    axes[0].axhline(0, color="black", linewidth=0.8)
    axes[0].set_title("Envoy CPU added per request vs no gate (µs)\nmedian, bars: min…max over rounds")
    axes[0].legend(fontsize=7, loc="upper left")

    grouped(axes[1], rows, scenarios, [v for v in STANDARD if v in labels], labels, lambda r: r["rps"])
    axes[1].set_title("Requests per second (median)\none Envoy worker on one core")
    axes[1].legend(fontsize=7, loc="lower left")

    if profile:
        ax = axes[2]
        keys = [k for k in ["d", "e"] + profile if ("h1-allowed", k) in rows]
        ys = [added(rows[("h1-allowed", k)]) for k in keys]
        ax.barh(range(len(keys)), ys, color="tab:gray")
        ax.set_yticks(range(len(keys)))
        ax.set_yticklabels([short(labels[k]) for k in keys], fontsize=7)
        ax.invert_yaxis()
        ax.axvline(0, color="black", linewidth=0.8)
        ax.grid(axis="x", alpha=0.3)
        ax.set_title("Where the filter's time goes (HTTP/1.1, allowed)\nadded CPU µs per request vs no gate")

    if instr_gates:
        ax = axes[2 + bool(profile)]
        ys = [instr[v]["added_vs_a_per_request"] / 1000 for v in instr_gates]
        bars = ax.bar(range(len(instr_gates)), ys, color=[COLOURS.get(v) for v in instr_gates])
        for bar, y in zip(bars, ys):
            ax.annotate(f"{y:+.1f}k", (bar.get_x() + bar.get_width() / 2, y), ha="center",
                        va="bottom" if y >= 0 else "top", fontsize=8)
        ax.set_xticks(range(len(instr_gates)))
        ax.set_xticklabels([short(labels.get(v, instr[v].get("label", v))) for v in instr_gates],
                           fontsize=7, rotation=15, ha="right")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.grid(axis="y", alpha=0.3)
        settings = data["instructions"]
        ax.set_title(
            "Envoy instructions added per request vs no gate (×1000)\n"
            f"callgrind, HTTP/1.1 allowed, {settings.get('requests', '?')} requests, one run each"
        )

    meta = data["meta"]
    fig.suptitle(f"Token gate cost in Envoy 1.40 — {meta.get('cpu', '?')}, {meta.get('date_utc', '?')}", fontsize=10)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    print(dst)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: bench-plot.py performance.json performance.png")
    main(sys.argv[1], sys.argv[2])

"""The gain of pretraining against corpus size, from the grid's results.json
(``bench/pretrain_experiment.py``): SODA_c of each pretrained run minus the scratch
run with the same labels and fine-tuning seed, on the test split and on the fresh
set; a line through the means per label fraction, a dot per seed.

    .venv/bin/python bench/plot_pretrain_gain.py runs/pretrain_grid/results.json \\
        -o docs/pretrain_gain.png

Needs matplotlib (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

SETS = {"test": "test split", "fresh": "fresh set"}


def gain_series(
    results: dict[str, Any], metric: str, which: str
) -> dict[float, list[tuple[int, list[float]]]]:
    """fraction -> [(corpus videos, per-seed gains)] of the both-objectives arms of
    the first pretraining seed, in corpus order."""
    grid = results["grid"]
    seed = grid["pretrain_seeds"][0]
    series: dict[float, list[tuple[int, list[float]]]] = {}
    for row in results["rows"]:
        if (
            row["init"] != "pretrained"
            or row["objective"] != "both"
            or row["pretrain_seed"] != seed
            or row["speech"]
            or row["fraction"] not in grid["corpus_fractions"]
        ):
            continue
        values = row[f"gain_{which}"][metric]["values"]
        if values:
            series.setdefault(row["fraction"], []).append((row["corpus"], values))
    return {f: sorted(points) for f, points in sorted(series.items())}


def plot(results: dict[str, Any], out: Path, metric: str = "SODA_c") -> Path:
    """Draws one panel per scored set into ``out`` (PNG, SVG or PDF by suffix)."""
    try:
        import matplotlib
    except ImportError as e:
        raise SystemExit("the plot needs matplotlib: pip install -e '.[bench]'") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(SETS), figsize=(4.2 * len(SETS), 3.4), sharey=True, squeeze=False
    )
    for ax, (which, title) in zip(axes[0], SETS.items(), strict=True):
        ticks: set[int] = set()
        for fraction, points in gain_series(results, metric, which).items():
            sizes = [n for n, _ in points]
            ticks.update(sizes)
            means = [sum(v) / len(v) for _, v in points]
            (line,) = ax.plot(
                sizes, means, marker="o", label=f"{100 * fraction:g}% labels"
            )
            for n, values in points:
                ax.scatter([n] * len(values), values, s=12, alpha=0.5,
                           color=line.get_color())  # fmt: skip
        ax.axhline(0.0, color="grey", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xticks(sorted(ticks), [f"{n:,}" for n in sorted(ticks)])
        ax.minorticks_off()
        ax.set_xlabel("narrated videos in the pretraining corpus")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel(f"{metric} gain over scratch")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", type=Path, help="the grid's results.json")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="image (default: pretrain_gain.png beside it)")  # fmt: skip
    p.add_argument("--metric", default="SODA_c", help="SODA_c, CIDEr, METEOR, F1")
    args = p.parse_args(argv)
    results = json.loads(args.results.read_text(encoding="utf-8"))
    out = args.output or args.results.with_name("pretrain_gain.png")
    plot(results, out, args.metric)
    print(out)


if __name__ == "__main__":
    main()

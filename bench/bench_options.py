"""Training seconds per step of the synthetic recipe with each option, against the
plain recipe measured in the same run.

Each option trains configs/synthetic.yaml (batch 16, one torch thread, CPU) for
``--warmup`` + ``--steps`` optimizer steps on the first ``--videos`` training videos
of the synthetic benchmark, with everything the loop does per step (data, augmentation,
losses, backward, AdamW); the median of the measured steps is reported. The plain
recipe runs first and last, and each ratio is to the mean of those two, so drift of
a shared machine shows as the two plain rows' difference.

    .venv/bin/python bench/bench_options.py SYNTH_DIR FEATURES
(SYNTH_DIR from densevid synth --videos 2000; FEATURES with the ``pixels`` (tint and
timing), ``logmel`` and ``subtitles`` streams)
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from densevid.training import load_config, train

INIT = Path(__file__).resolve().parents[1] / "src" / "densevid" / "models" / "default"
OPTIONS = {
    "plain": [],
    "+ audio (logmel)": ["model.audio_features=logmel"],
    "+ speech (subtitles)": ["model.speech_features=subtitles"],
    "+ audio + speech": [
        "model.audio_features=logmel",
        "model.speech_features=subtitles",
    ],
    "concept head (n_concepts=40)": ["model.n_concepts=40"],
    "no frame-event head": ["model.frame_events=false"],
    "SCST (4 samples, from init)": [
        "objective=scst",
        f"init={INIT}",
        "scst_samples=4",
        "lr=5e-5",
    ],
}


def step_seconds(
    features: Path, sets: list[str], warmup: int, steps: int, tmp: Path
) -> float:
    """Median seconds of the optimizer steps after the first ``warmup``."""
    stamps: list[float] = []
    cfg = load_config(
        "configs/synthetic.yaml",
        [
            f"train_annotations={tmp / 'train.json'}",
            "val_annotations=[]",
            f"features={features}",
            f"output_dir={tmp / 'run'}",
            f"max_steps={warmup + steps}",
            "eval_every=0",
            "save_every=0",
            "log_every=0",
            *sets,
        ],
    )
    start = time.perf_counter()
    train(
        cfg, verbose=False, on_step=lambda step, _: stamps.append(time.perf_counter())
    )
    times = [b - a for a, b in zip([start, *stamps], stamps, strict=False)]
    return statistics.median(times[warmup:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("synth", type=Path)
    p.add_argument("features", type=Path)
    p.add_argument("--videos", type=int, default=200, help="training videos read")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--only", nargs="*", default=[], help="option names to run")
    args = p.parse_args()
    videos = json.loads((args.synth / "train.json").read_text())
    subset = dict(list(videos.items())[: args.videos])
    names = [n for n in OPTIONS if n in args.only or not args.only]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        others = [n for n in names if n != "plain"]
        for i, name in enumerate(["plain", *others, "plain"]):
            run = Path(tmp) / str(i)
            run.mkdir()
            (run / "train.json").write_text(json.dumps(subset))
            s = step_seconds(args.features, OPTIONS[name], args.warmup, args.steps, run)
            rows.append((name, s))
            print(f"{name}: {s:.3f} s/step", flush=True)
    plain = statistics.mean(s for name, s in rows if name == "plain")
    print("\n| option | s/step | x plain |\n|---|---|---|")
    for name, s in rows:
        print(f"| {name} | {s:.3f} | {s / plain:.2f} |")


if __name__ == "__main__":
    main()

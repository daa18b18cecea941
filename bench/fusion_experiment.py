"""Two visual streams in one model: concatenated and normalised as one vector
(``visual_fusion: concat``) or normalised apart (``sum``), measured on the synthetic
benchmark.

The streams are two blocks of the ``pixels`` features stored as separate streams, so
they differ in scale as real streams do: ``blobs`` (object-centric fields, values
~0.01-1) and ``motion`` (frame differences on a grid). Each arm trains the synthetic
recipe (shortened) with ``visual_features: [blobs, motion]`` for several seeds, then
predicts the test split and scores F1 and SODA_c.

    .venv/bin/python bench/fusion_experiment.py SYNTH_DIR FEATURES OUT \\
        --steps 1500 --seeds 0 1 --jobs 2
(SYNTH_DIR from densevid synth; FEATURES its pixels features with tint and timing)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from densevid.events import load_annotations
from densevid.features.cache import load_features, save_features

STREAMS = ("blobs", "motion")


def split_streams(synth: Path, features: Path, out: Path) -> Path:
    """Stores each block of the pixels rows as its own stream, for every video."""
    target = out / "features"
    for split in ("train", "val", "test"):
        for vid in load_annotations(synth / f"{split}.json"):
            array, meta = load_features(features, "pixels", vid)
            for name in STREAMS:
                if (target / name / f"{vid}.npy").exists():
                    continue
                block = meta["layout"][name]
                rows = array[:, block["start"] : block["stop"]]
                part = {k: v for k, v in meta.items() if k not in ("layout", "dim")}
                save_features(target, name, vid, rows, part)
    return target


def run(cmd: list[str], log: Path) -> None:
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (see {log})")


def arm(synth: Path, feats: Path, out: Path, fusion: str, seed: int, steps: int):
    name = f"{fusion}_seed{seed}"
    run_dir = out / name
    densevid = [sys.executable, "-m", "densevid"]
    sets = [
        f"train_annotations={synth / 'train.json'}",
        f"val_annotations=[{synth / 'val.json'}]",
        f"features={feats}",
        f"output_dir={run_dir}",
        f"max_steps={steps}",
        f"warmup_steps={min(200, steps // 10)}",
        "eval_every=0",
        f"save_every={steps}",
        "hflip=0",  # mirroring reads one pixels stream
        f"seed={seed}",
        "model.visual_features=[blobs, motion]",
        "model.visual_blocks=[]",
        f"model.visual_fusion={fusion}",
    ]
    cmd = [*densevid, "-q", "train", "--config", "configs/synthetic.yaml"]
    for s in sets:
        cmd += ["--set", s]
    run(cmd, out / f"{name}.train.log")
    preds = out / f"{name}.test.json"
    cmd = [*densevid, "-q", "predict", str(run_dir / "last"), "--features", str(feats)]
    cmd += ["--annotations", str(synth / "test.json"), "-o", str(preds)]
    run(cmd, out / f"{name}.predict.log")
    scores = out / f"{name}.scores.json"
    cmd = [*densevid, "-q", "eval", "-s", str(preds), "-r", str(synth / "test.json")]
    cmd += ["--metrics", "F1", "SODA_c", "--json", str(scores)]
    run(cmd, out / f"{name}.eval.log")
    got = json.loads(scores.read_text())
    return fusion, seed, got["F1"], got["SODA_c"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("synth", type=Path)
    parser.add_argument("features", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    feats = split_streams(args.synth, args.features, args.out)
    jobs = [(f, s) for s in args.seeds for f in ("concat", "sum")]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(
            pool.map(
                lambda j: arm(args.synth, feats, args.out, j[0], j[1], args.steps),
                jobs,
            )
        )
    for fusion in ("concat", "sum"):
        rows = [r for r in results if r[0] == fusion]
        for _, seed, f1, soda in rows:
            print(f"{fusion:6} seed {seed}: F1 {f1:.3f}  SODA_c {soda:.3f}")
        f1s, sodas = [r[2] for r in rows], [r[3] for r in rows]
        spread = lambda xs: max(xs) - min(xs)  # noqa: E731
        print(
            f"{fusion:6} mean: F1 {statistics.mean(f1s):.3f} (spread {spread(f1s):.3f})"
            f"  SODA_c {statistics.mean(sodas):.3f} (spread {spread(sodas):.3f})"
        )


if __name__ == "__main__":
    main()

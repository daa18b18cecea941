"""End-to-end training of the visual encoder against the frozen-feature recipe on the
synthetic benchmark, at the same CPU-time budget (issue #22; seed 003, EtENet).

Arms, each trained from scratch unless said otherwise:

- ``frozen``: configs/synthetic.yaml, frozen hand-made ``pixels`` features (the
  object-centric ``blobs`` block), ``--frozen-steps``;
- ``e2e``: configs/synthetic_frames.yaml, a small CNN over raw frames trained with
  the captioner (16 of 100 frames per video in the backward), ``--e2e-steps``;
- ``random-cnn``: ``e2e`` with its encoder frozen at the random initialisation
  (``encoder_lr_ratio=0``): a frozen *generic* feature, the control that says what
  training the encoder adds;
- ``e2e-warm``: ``e2e`` warm-started from the ``frozen`` run of the same seed
  (temporal encoder and LM; the input layer and the CNN start fresh).

The budget: with ``--budget-min M`` each run first trains ``CALIBRATION_STEPS`` steps
to time a step of its arm in the conditions it will run in (the loop's own clock,
from the first step on, so start-up is not counted), then trains for ``M`` minutes'
worth of steps with the schedule set to that length. Without it, ``--frozen-steps``
and ``--e2e-steps`` are the lengths.

Per run: the training process's CPU seconds (user + system, so the two arms are
compared per CPU second, whatever else shares the machine), the test split decoded
with ``densevid predict`` (beam 4) and scored with ``densevid eval``, predict's CPU
seconds per video (features or frames from the cache), and ``densevid caption`` on
``--n-caption`` test videos from their files (decode, extract, encode, generate:
frames in, no cache) for the cost per video at inference. One thread everywhere.

Resumable (a run whose scores exist is read back). Run one arm and seed per
process, each in a CPU slot, then once more without training to print the table:

    /tmp/slot_run .venv/bin/python bench/e2e_experiment.py SYNTH FEATURES FRAMES OUT \\
        --arms e2e --seeds 0
    .venv/bin/python bench/e2e_experiment.py SYNTH FEATURES FRAMES OUT --table
(SYNTH from densevid synth --videos 2000; FEATURES its pixels features with tint and
timing, as configs/synthetic.yaml reads them; FRAMES its ``frames`` stream)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

METRICS = ("F1", "SODA_c", "METEOR", "CIDEr")
CALIBRATION_STEPS = (120, 200)  # a step's time: between these log records (after
# the first epoch, 100 steps, which also reads every video's file once)
BATCH = 16  # both recipes' batch_size: the log's videos per second -> steps
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run(cmd: list[str], log: Path) -> tuple[float, float]:
    """Runs ``cmd``; returns its CPU seconds (user + system) and wall seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    tic = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=ENV)
    wall = time.perf_counter() - tic
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):  # 1: some videos failed, reported in the log
        raise SystemExit(f"{' '.join(cmd)} failed (see {log})")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def arm_settings(args: argparse.Namespace, name: str, seed: int) -> tuple:
    """(config, features directory, steps, extra --set overrides) of an arm."""
    if name == "frozen":
        return "configs/synthetic.yaml", args.features, args.frozen_steps, []
    sets = []
    if name == "random-cnn":
        sets.append("encoder_lr_ratio=0")
    if name == "e2e-warm":
        sets.append(f"init={args.out / f'frozen_seed{seed}' / 'last'}")
    return "configs/synthetic_frames.yaml", args.frames, args.e2e_steps, sets


def train_command(
    args: argparse.Namespace, name: str, seed: int, run_dir: Path, steps: int
) -> list[str]:
    config, features, _, sets = arm_settings(args, name, seed)
    sets = [
        f"train_annotations={args.synth / 'train.json'}",
        "val_annotations=[]",  # no validation pass inside the timed training
        f"features={features}",
        f"output_dir={run_dir}",
        f"max_steps={steps}",
        "eval_every=0",
        f"save_every={steps}",
        "resume=false",
        f"seed={seed}",
        "log_every=10",
        *sets,
    ]
    cmd = [sys.executable, "-m", "densevid", "-q", "train", "--config", config]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def log(run_dir: Path) -> list[dict]:
    """The training records of a run's log.jsonl."""
    lines = (run_dir / "log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "videos_per_s" in r]


def calibrate(args: argparse.Namespace, name: str, seed: int) -> float:
    """Seconds per training step of the arm, from a short run's log: the time
    between its two ``CALIBRATION_STEPS`` records (the loop logs videos per second
    since its first step)."""
    first, last = CALIBRATION_STEPS
    run_dir = args.out / f"{name}_seed{seed}_calibration"
    cmd = train_command(args, name, seed, run_dir, last)
    cmd += ["--set", f"log_every={math.gcd(first, last)}", "--set", "warmup_steps=1"]
    run(cmd, args.out / f"{name}_seed{seed}.calibration.log")
    seconds = {r["step"]: r["step"] * BATCH / r["videos_per_s"] for r in log(run_dir)}
    return (seconds[last] - seconds[first]) / (last - first)


def train(args: argparse.Namespace, name: str, seed: int) -> dict:
    """``densevid train`` of the arm; its checkpoint and the training's cost."""
    tag = f"{name}_seed{seed}"
    run_dir = args.out / tag
    cost_path = args.out / f"{tag}.train.json"
    if cost_path.exists():
        return json.loads(cost_path.read_text())
    steps = arm_settings(args, name, seed)[2]
    cost: dict = {}
    if args.budget_min:
        cost["calibration_s_per_step"] = calibrate(args, name, seed)
        steps = int(round(args.budget_min * 60 / cost["calibration_s_per_step"], -1))
    cmd = train_command(args, name, seed, run_dir, steps)
    cpu, wall = run(cmd, args.out / f"{tag}.train.log")
    last = log(run_dir)[-1]
    loop_s = last["step"] * BATCH / last["videos_per_s"]
    cost.update(steps=steps, train_cpu_s=cpu, train_wall_s=wall, loop_wall_s=loop_s)
    cost_path.write_text(json.dumps(cost))
    return cost


def arm(args: argparse.Namespace, name: str, seed: int) -> dict:
    out: Path = args.out
    tag = f"{name}_seed{seed}"
    scores_path = out / f"{tag}.scores.json"
    if scores_path.exists():
        return json.loads(scores_path.read_text())
    cost = train(args, name, seed)
    checkpoint = str(out / tag / "last")
    features = arm_settings(args, name, seed)[1]
    densevid = [sys.executable, "-m", "densevid", "-q"]
    preds = out / f"{tag}.test.json"
    cmd = [*densevid, "predict", checkpoint, "--features", str(features)]
    cmd += ["--annotations", str(args.synth / "test.json"), "-o", str(preds)]
    predict_cpu, _ = run(cmd, out / f"{tag}.predict.log")
    cmd = [*densevid, "eval", "-s", str(preds), "-r", str(args.synth / "test.json")]
    cmd += ["--json", str(scores_path)]
    run(cmd, out / f"{tag}.eval.log")
    n_test = len(json.loads((args.synth / "test.json").read_text()))
    videos = sorted((args.synth / "videos").glob("v_test*.mp4"))[: args.n_caption]
    cmd = [*densevid, "caption", *map(str, videos), "--model", checkpoint]
    cmd += ["-o", str(out / f"{tag}.caption"), "--format", "json"]
    caption_cpu, _ = run(cmd, out / f"{tag}.caption.log")
    # caption's own stage times (no process start-up): decoding and extraction,
    # then encoding and generation
    stages = re.search(
        r"decode\+features ([\d.]+) s, generation ([\d.]+) s",
        (out / f"{tag}.caption.log").read_text(),
    )
    scores = json.loads(scores_path.read_text())
    scores.update(cost)
    scores["s_per_step"] = cost["loop_wall_s"] / cost["steps"]
    scores["predict_cpu_s_per_video"] = predict_cpu / n_test
    scores["caption_cpu_s_per_video"] = caption_cpu / max(len(videos), 1)
    if stages:
        n = max(len(videos), 1)
        scores["caption_decode_s_per_video"] = float(stages.group(1)) / n
        scores["caption_generate_s_per_video"] = float(stages.group(2)) / n
    scores_path.write_text(json.dumps(scores))
    return scores


def cell(xs: list[float], digits: int) -> str:
    mean = statistics.mean(xs)
    spread = f" ± {(max(xs) - min(xs)) / 2:.{digits}f}" if len(xs) > 1 else ""
    return f"{mean:.{digits}f}{spread}"


def table(args: argparse.Namespace) -> None:
    cols = ("steps", "train CPU min (loop min)", "s/step", "predict CPU s/video")
    cols += ("caption s/video: decode + frames or features, generation", *METRICS)
    print("| arm | seeds | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 2) + "|")
    for name in args.arms:
        rows = []
        for seed in args.seeds:
            path = args.out / f"{name}_seed{seed}.scores.json"
            if path.exists():
                rows.append(json.loads(path.read_text()))
        if not rows:
            continue
        cells = [
            cell([r["steps"] for r in rows], 0),
            cell([r["train_cpu_s"] / 60 for r in rows], 1)
            + f" ({cell([r['loop_wall_s'] / 60 for r in rows], 1)})",
            cell([r["s_per_step"] for r in rows], 3),
            cell([r["predict_cpu_s_per_video"] for r in rows], 3),
            cell([r["caption_decode_s_per_video"] for r in rows], 3)
            + " + "
            + cell([r["caption_generate_s_per_video"] for r in rows], 3),
            *(cell([r[m] for r in rows], 4) for m in METRICS),
        ]
        print(f"| {name} | {len(rows)} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("synth", type=Path)
    parser.add_argument("features", type=Path, help="pixels features (frozen arm)")
    parser.add_argument("frames", type=Path, help="the frames stream's FEATURES dir")
    parser.add_argument("out", type=Path)
    parser.add_argument("--frozen-steps", type=int, default=3000)
    parser.add_argument("--e2e-steps", type=int, default=2000)
    parser.add_argument("--budget-min", type=float, default=0.0)
    parser.add_argument("--n-caption", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--arms", nargs="+", default=["frozen", "e2e", "random-cnn", "e2e-warm"]
    )
    parser.add_argument("--table", action="store_true", help="only print the table")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.table:
        for name in args.arms:
            for seed in args.seeds:
                arm(args, name, seed)
    table(args)


if __name__ == "__main__":
    main()

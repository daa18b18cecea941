"""The seed systems' methods as options of densevid, measured on the synthetic
benchmark against the joint model.

Arms (each scored on the test split with every caption metric, F1, SODA_c and the
references' log-likelihood):

- ``joint``: the starting checkpoint as it is (beam 4, ``densevid predict``'s
  default);
- ``ml``: the checkpoint trained ``--steps`` more steps by maximum likelihood at the
  SCST learning rate: the control, since SCST also trains longer;
- ``scst-soda`` / ``scst-f1``: ``objective=scst`` with that reward for ``--steps``,
  each sample against the greedy decode;
- ``scst-mean``: ``scst-soda`` with each sample against the mean of its video's
  other samples and the references' cross-entropy beside (``scst_baseline=mean``,
  ``scst_ml_weight=0.5``);
- ``segments``: the starting checkpoint captioning the reference segments
  (``densevid predict --segments``, the "ground-truth proposals" setting);
- ``scratch`` / ``concepts`` / ``concepts-light``: the recipe trained from scratch
  for ``--scratch-steps``, without and with the concept head (``model.n_concepts``;
  ``concept_loss_weight`` 1 or 0.1);
- ``audio`` / ``speech`` / ``audio-speech``: ``scratch`` with the ``logmel`` audio
  stream, the ``subtitles`` transcript or both beside the frames (early fusion:
  every stream encoded and concatenated for the decoder's cross-attention);
- ``two-stage``: the recipe trained from scratch for ``--scratch-steps`` with a
  proposal head (``model.n_proposal_anchors``), then its proposals captioned one by
  one by the same model (``densevid predict --two-stage``, BMT/MDVC's two stages;
  the proposals' objectness threshold chosen on the validation split);
  ``two-stage-light``: the same at a tenth of the proposal loss's weight;
  ``two-stage-joint``: that checkpoint decoded as the joint model;
  ``two-stage-segments`` / ``scratch-segments``: that checkpoint / the ``scratch``
  one captioning the reference segments;
- ``ensemble-average`` / ``ensemble-select``: the ``concepts`` runs of two seeds as
  one ensemble, captions from the averaged probabilities or chosen per event
  (``densevid predict --select``);
- ``late`` / ``late-audio``: MDVC's late fusion as an ensemble of the same seed's
  ``scratch``, ``audio`` and ``speech`` runs (or the first two), their next-token
  distributions averaged; ``scratch-ensemble``, the control for two members: the
  ``scratch`` runs of seeds 0 and 1 as one ensemble.

Runs are resumable (an arm whose scores exist is read back), ``--jobs`` at once.

    .venv/bin/python bench/methods_experiment.py SYNTH_DIR FEATURES OUT \\
        --init src/densevid/models/default --steps 300 --seeds 0 1 --jobs 2
(SYNTH_DIR from densevid synth --videos 2000; FEATURES its pixels features with tint
and timing, as configs/synthetic.yaml reads them)
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

METRICS = ("METEOR", "CIDEr", "Bleu_4", "F1", "SODA_c")
# the streams beside the visual one (MDVC's early fusion: one model reads them all)
STREAMS = {
    "audio": ["model.audio_features=logmel"],
    "speech": ["model.speech_features=subtitles"],
    "audio-speech": ["model.audio_features=logmel", "model.speech_features=subtitles"],
}
# MDVC's late fusion: the runs of one seed whose ensemble it is
LATE = {"late": ("scratch", "audio", "speech"), "late-audio": ("scratch", "audio")}


def run(cmd: list[str], log: Path) -> str:
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (see {log})")
    return log.read_text()


def train(
    args: argparse.Namespace, tag: str, seed: int, steps: int, sets: list[str]
) -> str:
    """``densevid train`` of configs/synthetic.yaml with these overrides; the
    checkpoint it ends with."""
    run_dir = args.out / tag
    state = run_dir / "last" / "training_state.json"
    if state.exists() and json.loads(state.read_text())["step"] >= steps:
        return str(run_dir / "last")  # trained already (resumable)
    sets = [
        f"train_annotations={args.synth / 'train.json'}",
        f"val_annotations=[{args.synth / 'val.json'}]",
        f"features={args.features}",
        f"output_dir={run_dir}",
        f"max_steps={steps}",
        "eval_every=0",
        f"save_every={steps}",
        f"seed={seed}",
        *sets,
    ]
    cmd = [sys.executable, "-m", "densevid", "-q", "train"]
    cmd += ["--config", "configs/synthetic.yaml"]
    for s in sets:
        cmd += ["--set", s]
    run(cmd, args.out / f"{tag}.train.log")
    return str(run_dir / "last")


def min_score(args: argparse.Namespace, tag: str, checkpoints: list[str]) -> float:
    """``--min-score``, or else the proposal threshold of the best F1 on the
    validation split (bench/proposal_threshold.py), kept in OUT/TAG.threshold.json."""
    if args.min_score is not None:
        return args.min_score
    path = args.out / f"{tag}.threshold.json"
    if not path.exists():
        from proposal_threshold import best_min_score, sweep

        rows = sweep(checkpoints[0], str(args.features), str(args.synth / "val.json"))
        path.write_text(json.dumps({"best": best_min_score(rows), "rows": rows}))
    return json.loads(path.read_text())["best"]


def arm(args: argparse.Namespace, name: str, seed: int) -> dict:
    out: Path = args.out
    tag = f"{name}_seed{seed}"
    scores_path = out / f"{tag}.scores.json"
    if scores_path.exists():
        return json.loads(scores_path.read_text())
    densevid = [sys.executable, "-m", "densevid", "-q"]
    checkpoints = [str(args.init)]
    if name in ("scratch", "concepts", "concepts-light", *STREAMS):
        sets = [f"warmup_steps={min(200, args.scratch_steps // 10)}"]
        sets += STREAMS.get(name, [])
        if name.startswith("concepts"):
            sets.append(f"model.n_concepts={args.concepts}")
        if name == "concepts-light":  # the concept loss at a tenth of the weight
            sets.append("concept_loss_weight=0.1")
        checkpoints = [train(args, tag, seed, args.scratch_steps, sets)]
    if name.startswith("two-stage"):  # one training run serves the three arms
        sets = [f"warmup_steps={min(200, args.scratch_steps // 10)}"]
        sets.append(f"model.n_proposal_anchors={args.anchors}")
        run_tag = f"two-stage_seed{seed}"
        if name == "two-stage-light":  # the proposal loss at a tenth of the weight
            sets.append("proposal_loss_weight=0.1")
            run_tag = tag
        checkpoints = [train(args, run_tag, seed, args.scratch_steps, sets)]
    if name == "scratch-segments":
        checkpoints = [str(out / f"scratch_seed{seed}" / "last")]
    if name.startswith("ensemble"):
        checkpoints = [str(out / f"concepts_seed{s}" / "last") for s in args.seeds]
    if name in LATE:  # one model per stream beside the frames, mixed at the output
        checkpoints = [str(out / f"{r}_seed{seed}" / "last") for r in LATE[name]]
    if name == "scratch-ensemble":  # late-audio's control: two members, frames only
        checkpoints = [str(out / f"scratch_seed{s}" / "last") for s in (0, 1)]
    if name in ("ml", "scst-soda", "scst-f1", "scst-mean"):
        sets = [f"init={args.init}", f"lr={args.lr}", "warmup_steps=20"]
        sets.append("min_lr_ratio=1.0")
        if name in ("scst-soda", "scst-f1"):
            sets += ["objective=scst", f"scst_reward={name.split('-')[1]}"]
        if name == "scst-mean":  # the other samples as baseline, the ML loss beside
            sets += ["objective=scst", "scst_reward=soda", "scst_baseline=mean"]
            sets += ["scst_ml_weight=0.5"]
        if name.startswith("scst"):
            sets += [f"scst_samples={args.samples}"]
        checkpoints = [train(args, tag, seed, args.steps, sets)]
    preds = out / f"{tag}.test.json"
    cmd = [*densevid, "predict", *checkpoints, "--features", str(args.features)]
    cmd += ["--annotations", str(args.synth / "test.json"), "-o", str(preds)]
    if name.endswith("segments"):
        cmd += ["--segments", str(args.synth / "test.json")]
    if name in ("two-stage", "two-stage-light"):
        cmd += ["--two-stage", "--min-score", str(min_score(args, tag, checkpoints))]
    if name == "ensemble-select":
        cmd += ["--select"]
    log = run(cmd, out / f"{tag}.predict.log")
    loglik = re.search(r"log-likelihood (-?[\d.]+)/token", log)
    cmd = [*densevid, "eval", "-s", str(preds), "-r", str(args.synth / "test.json")]
    cmd += ["--json", str(scores_path)]
    run(cmd, out / f"{tag}.eval.log")
    scores = json.loads(scores_path.read_text())
    scores["log_likelihood"] = float(loglik.group(1)) if loglik else float("nan")
    scores_path.write_text(json.dumps(scores))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("synth", type=Path)
    parser.add_argument("features", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument(
        "--init", type=Path, default=Path("src/densevid/models/default")
    )
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--scratch-steps", type=int, default=1500)
    parser.add_argument("--concepts", type=int, default=40)
    parser.add_argument("--anchors", type=int, default=4)
    parser.add_argument(
        "--min-score",
        type=float,
        default=None,
        help="two-stage's proposal threshold (default: the best F1 on val)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--arms", nargs="+", default=["joint", "segments", "ml", "scst-soda"]
    )
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = []
    for name in args.arms:
        once = name in ("joint", "segments", "scratch-ensemble")
        once = once or name.startswith("ensemble")
        seeds = [0] if once else args.seeds  # deterministic given their inputs
        jobs += [(name, s) for s in seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda j: (j, arm(args, *j)), jobs))
    cols = (*METRICS, "log_likelihood")
    print("| arm | seeds | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 2) + "|")
    for name in args.arms:
        rows = [r for (n, _), r in results if n == name]
        cells = []
        for m in cols:
            xs = [r[m] for r in rows]
            mean = statistics.mean(xs)
            spread = f" ± {(max(xs) - min(xs)) / 2:.4f}" if len(xs) > 1 else ""
            cells.append(f"{mean:.4f}{spread}")
        print(f"| {name} | {len(rows)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

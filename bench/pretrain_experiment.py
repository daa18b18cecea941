"""Does pretraining on narrated videos help? The issue-7 experiment, one command.

On the synthetic benchmark, whose narration (.vtt beside each video) plays the role of
speech in real videos:

1. an annotated set (seed 0) and a larger narrated corpus from another seed
   (``--split 1,0,0``: its annotations are never read);
2. features (``pixels``, ``subtitles``) for both, the corpus packed in tar shards;
3. ``densevid pretrain`` on the corpus (generative + denoising);
4. ``densevid train`` at several fractions of the annotated training split, from
   scratch and with ``--init`` from the pretrained checkpoint (frames only), plus both
   with the transcript as encoder input (``model.speech_features=subtitles``) at 100%;
   scratch runs use the pretrained model's tokenizer, so that only the initial
   weights differ and per-token log-likelihoods compare;
5. ``densevid predict`` + ``densevid eval`` of every ``best`` checkpoint on the test
   split: SODA_c, CIDEr, METEOR, F1 and the references' per-token log-likelihood.

Every step is a ``densevid`` command (printed as it runs) and is skipped when its
output exists, so an interrupted run continues where it stopped. The table goes to
``OUT/results.md`` and ``OUT/results.json``.

    .venv/bin/python bench/pretrain_experiment.py runs/pretrain_experiment
    .venv/bin/python bench/pretrain_experiment.py /tmp/pilot --quick   # minutes
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml

from densevid.events import load_annotations, save_annotations

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("SODA_c", "CIDEr", "METEOR", "F1")
QUICK_MODEL = {
    "model.d_model": 32,
    "model.d_ff": 64,
    "model.d_kv": 8,
    "model.n_heads": 4,
    "model.n_layers": 1,
    "model.n_decoder_layers": 1,
    "model.n_temporal_layers": 1,
    "model.n_temporal_heads": 4,
    "model.n_frames": 32,
}


def run(cmd: list[str], log: Path) -> str:
    """Runs one densevid command, echoing it; its output is appended to ``log``."""
    line = " ".join(shlex.quote(c) for c in cmd)
    print(f"$ {line}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"$ {line}\n{proc.stdout}\n{proc.stderr}\n")
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {line}\n{proc.stderr[-2000:]}")
    print(f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    return proc.stdout


def densevid(*args: str) -> list[str]:
    return [sys.executable, "-m", "densevid", "-q", *args]


def sets(overrides: dict[str, object]) -> list[str]:
    out: list[str] = []
    for k, v in overrides.items():
        out += ["--set", f"{k}={v}"]
    return out


def finished(run_dir: Path, steps: int) -> bool:
    """Whether a run got to ``steps`` (a killed one has a ``last`` checkpoint too:
    running its command again resumes it)."""
    state = run_dir / "last" / "training_state.json"
    return state.exists() and json.loads(state.read_text())["step"] >= steps


def subset(train: Path, fraction: float, seed: int = 0) -> Path:
    """The first ``fraction`` of the training videos in a seeded random order."""
    pct = round(fraction * 100)
    path = train.with_name(f"train_{pct:03d}.json")
    if not path.exists():
        videos = list(load_annotations(train).values())
        random.Random(seed).shuffle(videos)
        n = max(1, round(len(videos) * fraction))
        save_annotations(sorted(videos[:n], key=lambda v: v.video_id), path)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="where data, runs and results go")
    p.add_argument("--videos", type=int, default=2000, help="annotated set size")
    p.add_argument("--pretrain-videos", type=int, default=4000)
    p.add_argument("--preset", default="default", help="synth preset")
    p.add_argument("--fractions", default="0.05,0.25,1")
    p.add_argument("--pretrain-steps", type=int, default=3000)
    p.add_argument("--train-steps", type=int, default=3000)
    p.add_argument("--workers", type=int, default=2, help="synth/extract processes")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra override for every pretrain and train run (model.* for both)",
    )
    p.add_argument(
        "--tokenizer-captions",
        action="store_true",
        help="let the pretraining tokenizer also learn from the annotated training "
        "captions (vocabulary only; by default it sees transcripts only)",
    )
    p.add_argument(
        "--only",
        choices=["scratch", "pretrained"],
        help="run only these rows (two processes can share the work: the scratch "
        "rows need only the pretraining's tokenizer, written when it starts); a "
        "last run without --only makes the table",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a pilot in minutes: small videos, tiny model, few steps",
    )
    args = p.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "commands.log"
    extra: dict[str, object] = dict(o.split("=", 1) for o in args.overrides)
    if args.quick:
        args.videos, args.pretrain_videos, args.preset = 40, 60, "small"
        args.pretrain_steps = args.train_steps = 60
        extra = {
            **QUICK_MODEL,
            "batch_size": 8,
            "eval_every": 30,
            "save_every": 30,
            "vocab_size": 300,
            "warmup_steps": 10,
            "num_threads": 1,  # tiny matrices: more threads only contend
            **extra,
        }
    ann, pre = out / "data" / "synth", out / "data" / "synth_pre"

    # 1-2: data and features
    if not (ann / "test.json").exists():
        run(
            densevid("synth", str(ann), "--videos", str(args.videos), "--preset",
                     args.preset, "--workers", str(args.workers)),
            log,
        )  # fmt: skip
    if not (pre / "train.json").exists():
        run(
            densevid("synth", str(pre), "--videos", str(args.pretrain_videos),
                     "--seed", "1", "--split", "1,0,0", "--preset", args.preset,
                     "--workers", str(args.workers)),
            log,
        )  # fmt: skip
    for data, wds in ((ann, False), (pre, True)):
        marker = data / "features" / ".complete"
        if not marker.exists():
            cmd = densevid(
                "extract", str(data / "videos"), "-o", str(data / "features"),
                "--features", "pixels,subtitles", "--workers", str(args.workers),
            )  # fmt: skip
            if wds:
                cmd += ["--webdataset", "--shard-size", "100"]
            run(cmd, log)
            marker.touch()

    # 3: pretraining
    pre_run = out / "runs" / "pretrain"
    if args.only != "scratch" and not finished(pre_run, args.pretrain_steps):
        run(
            densevid(
                "pretrain", "--config", "configs/pretrain_synthetic.yaml",
                *sets({
                    "corpus": pre / "features" / "webdataset",
                    "output_dir": pre_run,
                    "max_steps": args.pretrain_steps,
                    **(
                        {"tokenizer_texts": f"[{ann / 'train.json'}]"}
                        if args.tokenizer_captions
                        else {}
                    ),
                    **extra,
                }),
            ),
            log,
        )  # fmt: skip
    init = pre_run / "last"

    # 4-5: fine-tuning / scratch runs, each scored on the test split
    fractions = [float(f) for f in args.fractions.split(",")]
    rows = []
    for f in fractions:
        rows += [("scratch", f, False), ("pretrained", f, False)]
    rows += [("scratch", 1.0, True), ("pretrained", 1.0, True)]
    train_config = yaml.safe_load((ROOT / "configs" / "synthetic.yaml").read_text())
    batch_size = int(extra.get("batch_size", train_config["batch_size"]))
    results = []
    for start, f, speech in rows:
        if args.only and start != args.only:
            continue
        name = f"{start}_{round(f * 100):03d}{'_speech' if speech else ''}"
        run_dir = out / "runs" / name
        overrides: dict[str, object] = {
            "train_annotations": subset(ann / "train.json", f),
            "val_annotations": f"[{ann / 'val.json'}]",
            "features": ann / "features",
            "output_dir": run_dir,
            "max_steps": args.train_steps,
            "model.speech_features": "subtitles" if speech else "",
            **extra,
        }
        n_videos = len(load_annotations(overrides["train_annotations"]))
        if n_videos < batch_size:  # a small split still makes whole steps
            overrides["batch_size"] = n_videos
        if not finished(run_dir, int(overrides["max_steps"])):
            cmd = densevid("train", "--config", "configs/synthetic.yaml")
            if start == "pretrained":
                cmd += ["--init", str(init)]
            else:
                # the same tokenizer as the pretrained model: only the weights
                # differ, and per-token log-likelihoods are comparable across rows
                tokenizer = pre_run / "tokenizer"
                deadline = time.monotonic() + 3600
                while not (tokenizer / "tokenizer_config.json").exists():
                    if time.monotonic() > deadline:  # no pretraining is running
                        sys.exit(f"no pretraining tokenizer in {tokenizer}")
                    time.sleep(10)  # another process is starting the pretraining
                cmd += ["--set", f"tokenizer={tokenizer}"]
            run(cmd + sets(overrides), log)
        preds, scores = run_dir / "test_preds.json", run_dir / "test_scores.json"
        ll_file = run_dir / "test_loglik.txt"
        if not ll_file.exists():
            text = run(
                densevid("predict", str(run_dir / "best"), "--features",
                         str(ann / "features"), "--annotations",
                         str(ann / "test.json"), "-o", str(preds)),
                log,
            )  # fmt: skip
            ll_file.write_text(text)
        if not scores.exists():
            run(
                densevid("eval", "-s", str(preds), "-r", str(ann / "test.json"),
                         "--json", str(scores)),
                log,
            )  # fmt: skip
        m = re.search(r"log-likelihood (-?[\d.]+)/token", ll_file.read_text())
        s = json.loads(scores.read_text())
        results.append(
            {
                "init": start,
                "fraction": f,
                "speech": speech,
                **{k: s.get(k, math.nan) for k in METRICS},
                "log_likelihood": float(m.group(1)) if m else math.nan,
            }
        )

    header = "| init | train split | input | " + " | ".join(METRICS)
    lines = [header + " | log-lik/token |", "|" + "---|" * (len(METRICS) + 4)]
    for r in results:
        vals = " | ".join(f"{100 * r[k]:.2f}" for k in METRICS)
        lines.append(
            f"| {r['init']} | {100 * r['fraction']:.0f}% | "
            f"{'frames + speech' if r['speech'] else 'frames'} | {vals} | "
            f"{r['log_likelihood']:.3f} |"
        )
    table = "\n".join(lines)
    (out / "results.md").write_text(table + "\n", encoding="utf-8")
    (out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()

"""Benchmark: densevid's evaluation against the official scripts on BMT's predictions.

The job (issue 2): BMT's 4,483-video captioning file against val_1_no_missings with
every densevid_eval metric, plus SODA_c against val_1 and val_2 as PDVC reports it.
Prints our wall time, CPU time (this process and its Java children) and peak
resident memory, and the numbers. With ``--official DIR`` (PDVC's
``densevid_eval3`` directory with fujiso/SODA checked out in its ``SODA/``
submodule; pycocoevalcap from this environment) it also times the official
``evaluate2021.py`` and ``eval_soda.py`` on the same job, checks that the numbers
agree and prints the speed ratio. The machine may be shared: compare the ratio,
taken in one run, rather than absolute times.

    python bench/bench_eval.py [--data ../shared/data] [--official DIR]
        [--backend python|java] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
SUBMISSION = "predictions/bmt_captioning_results_val_1_e26.json"
CAPTION_REFS = ["activitynet/val_1_no_missings.json"]
SODA_REFS = ["activitynet/val_1.json", "activitynet/val_2.json"]
TOLERANCE = 1e-5

# Runs the official scripts in a child process and prints their scores as JSON.
OFFICIAL_DRIVER = textwrap.dedent(
    """
    import argparse, contextlib, json, os, sys, time
    official, submission, caption_refs, soda_refs = sys.argv[1:5]
    sys.path[:0] = [os.path.dirname(official), official, os.path.join(official, "SODA")]
    import numpy as np
    from densevid_eval3.evaluate2021 import main as evaluate2021
    from densevid_eval3.eval_soda import eval_soda
    times = {}
    with contextlib.redirect_stdout(sys.stderr):
        t = time.perf_counter()
        args = argparse.Namespace(submission=submission,
            references=json.loads(caption_refs), tious=[0.3, 0.5, 0.7, 0.9],
            max_proposals_per_video=1000, verbose=True, no_lang_eval=0)
        scores = {k: float(np.mean(v)) for k, v in evaluate2021(args).items()}
        times["captions_s"] = time.perf_counter() - t
        t = time.perf_counter()
        scores["SODA_c"] = float(eval_soda(submission, json.loads(soda_refs))["soda_c"])
        times["soda_s"] = time.perf_counter() - t
    print(json.dumps({"scores": scores, "times": times}))
    """
)


def children_cpu_s() -> float:
    t = os.times()
    return t.children_user + t.children_system


def run_ours(data: Path, workers: int | None, backend: str) -> dict:
    from densevid.events import load_annotations, load_submission
    from densevid.metrics import evaluate
    from densevid.metrics.backend import shared_tokenizer
    from densevid.metrics.scorers import make_meteor

    t0, c0 = time.perf_counter(), time.process_time() + children_cpu_s()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        preds = load_submission(data / SUBMISSION, max_per_video=1000)
        cap_refs = [load_annotations(data / p) for p in CAPTION_REFS]
        soda_refs = [load_annotations(data / p) for p in SODA_REFS]
    tokenizer = shared_tokenizer(backend)
    meteor = make_meteor(backend, workers)
    try:
        t1 = time.perf_counter()
        scores = evaluate(
            preds, cap_refs, soda=False, meteor=meteor, tokenizer=tokenizer
        )
        t2 = time.perf_counter()
        scores.update(
            evaluate(
                preds, soda_refs, metrics=("SODA_c",), meteor=meteor,
                tokenizer=tokenizer,
            )
        )  # fmt: skip
        t3 = time.perf_counter()
        java = backend == "java"
        jvm_rss = meteor.peak_rss_bytes() if java else 0
        jvm_cpu = meteor.cpu_seconds() if java else 0.0
    finally:
        meteor.close()
    if not java:  # the METEOR worker processes, now ended (the largest one)
        jvm_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    wall = time.perf_counter() - t0
    cpu = time.process_time() + children_cpu_s() - c0
    py_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "scores": scores,
        "wall_s": wall,
        "cpu_s": cpu,
        "captions_s": t2 - t1,
        "soda_s": t3 - t2,
        "python_rss": py_rss,
        "jvm_rss": jvm_rss,
        "jvm_cpu_s": jvm_cpu,
        "workers": getattr(meteor, "n_workers", 1),
        "backend": backend,
    }


def run_official(official: Path, data: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        driver = Path(tmp) / "driver.py"
        driver.write_text(OFFICIAL_DRIVER)
        cmd = [
            sys.executable,
            str(driver),
            str(official.resolve()),
            str(data / SUBMISSION),
            json.dumps([str(data / p) for p in CAPTION_REFS]),
            json.dumps([str(data / p) for p in SODA_REFS]),
        ]
        t0, c0 = time.perf_counter(), children_cpu_s()
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        cpu = children_cpu_s() - c0  # the script and the JVMs it waited for
    if proc.returncode != 0:
        sys.exit(f"the official scripts failed:\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = wall
    out["cpu_s"] = cpu
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--official", type=Path, help="PDVC's densevid_eval3 directory")
    ap.add_argument("--workers", type=int, help="METEOR processes (java backend)")
    ap.add_argument("--backend", default="python", choices=["python", "java"])
    args = ap.parse_args()
    if not (args.data / SUBMISSION).exists():
        sys.exit(f"reference data not found under {args.data}")
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f} at start")

    ours = run_ours(args.data, args.workers, args.backend)
    gib = 1024**3
    if ours["backend"] == "java":
        n = ours["workers"]
        java = f"({ours['jvm_cpu_s']:.1f} s of it METEOR), {n} METEOR workers"
    else:
        java = "(no Java)"
    print(
        f"densevid ({ours['backend']} backend): {ours['wall_s']:.1f} s wall "
        f"({ours['captions_s']:.1f} s captions + {ours['soda_s']:.1f} s SODA after "
        f"start-up), {ours['cpu_s']:.1f} s CPU {java}"
    )
    # The tokenizer's short-lived JVM (-Xmx128m, ~0.15 GiB) is not measured: the
    # kernel's figure for children counts the forked Python's pages too.
    total = ours["python_rss"] + ours["jvm_rss"]
    if ours["backend"] == "java":
        print(
            f"peak memory: python {ours['python_rss'] / gib:.2f} GiB + METEOR "
            f"{ours['jvm_rss'] / gib:.2f} GiB = {total / gib:.2f} GiB "
            "(+ ~0.15 GiB tokenizer JVM while METEOR loads)"
        )
    else:
        print(
            f"peak memory: python {ours['python_rss'] / gib:.2f} GiB + METEOR "
            f"worker {ours['jvm_rss'] / gib:.2f} GiB = {total / gib:.2f} GiB"
        )
    names = ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"]
    names += ["Recall", "Precision", "SODA_c"]
    print("  ".join(f"{n} {ours['scores'][n]:.6f}" for n in names))
    if args.official:
        print(f"load average {os.getloadavg()[0]:.1f} before the official scripts")
        off = run_official(args.official, args.data)
        worst = max(abs(off["scores"][n] - ours["scores"][n]) for n in names)
        print(
            f"official: {off['wall_s']:.1f} s wall ({off['times']['captions_s']:.1f} s "
            f"evaluate2021 + {off['times']['soda_s']:.1f} s eval_soda), "
            f"{off['cpu_s']:.1f} s CPU"
        )
        print(f"largest difference from the official numbers: {worst:.2e}")
        print(
            f"speed-up: {off['wall_s'] / ours['wall_s']:.1f}x wall, "
            f"{off['cpu_s'] / ours['cpu_s']:.1f}x CPU"
        )
        if worst > TOLERANCE:
            sys.exit("numbers differ from the official scripts")


if __name__ == "__main__":
    main()

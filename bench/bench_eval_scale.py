"""Benchmark: how ``densevid eval``'s time and peak memory grow with the number of
predicted events.

A submission for every val_1 video (4,917) with N events each, at random times
inside the video and with captions drawn from the training references (so that
sentences repeat as a real model's do), is scored against val_1 + val_2 with every
metric and SODA_c, each size in a fresh process (``densevid eval``). Prints events,
wall time, CPU time and peak resident memory (the process and its children, e.g.
the JVMs of ``--backend java``). 330 events per video is 1.6 million events.

    python bench/bench_eval_scale.py [--events 10 30 100 330] [--backend python]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
REFS = ["activitynet/val_1.json", "activitynet/val_2.json"]

# Runs one evaluation and prints its own peak memory (children: the JVMs).
DRIVER = """
import json, resource, sys, time, warnings
from densevid.metrics import evaluate_files
submission, refs, backend = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
t = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    scores = evaluate_files(submission, refs, backend=backend)
wall = time.perf_counter() - t
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"wall_s": wall, "rss": own, "children_rss": kids,
                  "METEOR": scores["METEOR"], "SODA_c": scores["SODA_c"]}))
"""


def make_submission(data: Path, per_video: int, seed: int, out: Path) -> int:
    """Writes the submission; returns its number of events."""
    rng = random.Random(seed)
    val = json.loads((data / REFS[0]).read_text())
    train = json.loads((data / "activitynet/train.json").read_text())
    sentences = [s.strip() for v in train.values() for s in v["sentences"]]
    results = {}
    for vid, v in val.items():
        d = float(v["duration"])
        events = []
        for _ in range(per_video):
            a, b = sorted((rng.uniform(0, d), rng.uniform(0, d)))
            events.append(
                {
                    "sentence": rng.choice(sentences),
                    "timestamp": [round(a, 2), round(b, 2)],
                }
            )
        results[vid] = events
    out.write_text(json.dumps({"version": "VERSION 1.0", "results": results}))
    return per_video * len(results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--events", type=int, nargs="+", default=[10, 30, 100, 330])
    ap.add_argument("--backend", default="python", choices=["python", "java"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not (args.data / REFS[0]).exists():
        sys.exit(f"reference data not found under {args.data}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"{'events':>10} {'wall s':>8} {'CPU s':>8} {'peak GiB':>9} {'s/1k ev':>8}")
    gib = 1024**3
    with tempfile.TemporaryDirectory() as tmp:
        for per_video in args.events:
            sub = Path(tmp) / f"sub_{per_video}.json"
            n = make_submission(args.data, per_video, args.seed, sub)
            refs = json.dumps([str(args.data / r) for r in REFS])
            cmd = [sys.executable, "-c", DRIVER, str(sub), refs, args.backend]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - t
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if proc.returncode != 0:
                sys.exit(f"evaluation failed:\n{proc.stderr[-2000:]}")
            got = json.loads(proc.stdout.strip().splitlines()[-1])
            cpu = (after.ru_utime - before.ru_utime) + (
                after.ru_stime - before.ru_stime
            )
            peak = (got["rss"] + got["children_rss"]) / gib
            print(
                f"{n:>10,} {wall:>8.1f} {cpu:>8.1f} {peak:>9.2f} "
                f"{1000 * wall / n:>8.3f}   (METEOR {got['METEOR']:.6f}, "
                f"SODA_c {got['SODA_c']:.6f})",
                flush=True,
            )


if __name__ == "__main__":
    main()

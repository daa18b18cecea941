"""Benchmark: METEOR 1.5 in Python (``metrics/meteor.py``) against pycocoevalcap's jar.

The job: the ~123,000 distinct (prediction, reference) pairs an evaluation of BMT's
val_1 and val_2 predictions scores (each prediction with every reference sentence of
its video), PTB-tokenised as the evaluation does. Prints, for the Python
implementation (in a child process, so that its memory and load times are its own)
and for the jar (``scorers.Meteor``, ``--workers`` processes): load time, time for
the pairs, pairs per second, peak resident memory; then whether every statistics
line and every per-video aggregate agree. The machine may be shared: compare the
two in one run rather than absolute times.

    python bench/bench_meteor.py [--data ../shared/data] [--pairs N] [--workers 2]
        [--no-jar] [--cold]

``--cold`` first converts the resources into an empty temporary cache directory
(the first use on a machine) and reports that time too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"

# Scores the pairs in a child process; prints timings and the statistics as JSON.
PYTHON_DRIVER = textwrap.dedent(
    """
    import json, resource, sys, time
    t0 = time.perf_counter()
    from densevid.metrics.meteor import PythonMeteor, compiled_kernel
    pairs = [tuple(p) for p in json.load(open(sys.argv[1]))["pairs"]]
    groups = json.load(open(sys.argv[1]))["groups"]
    out = {"import_s": time.perf_counter() - t0}
    m = PythonMeteor()
    t = time.perf_counter()
    res = m.resources
    res.directory()
    out["build_s"] = res.build_seconds
    t = time.perf_counter()
    res.arrays, res.vocab, res.lexicon, res.stemmer
    out["load_s"] = time.perf_counter() - t
    t = time.perf_counter()
    kernel = compiled_kernel()
    m.stats([("a man", "a man plays")])
    out["compile_s"] = time.perf_counter() - t
    out["numba"] = kernel is not None
    m = PythonMeteor(res)  # a fresh cache of pairs and words
    t = time.perf_counter()
    c = time.process_time()
    stats = m.stats(pairs)
    out["stats_s"] = time.perf_counter() - t
    out["stats_cpu_s"] = time.process_time() - c
    lines = dict(zip(map(tuple, pairs), stats))
    t = time.perf_counter()
    out["aggregates"] = m.corpus_scores([[lines[tuple(p)] for p in g] for g in groups])
    out["eval_s"] = time.perf_counter() - t
    out["stats"] = stats
    out["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(out))
    """
)


def activitynet_pairs(data: Path) -> tuple[list[tuple[str, str]], list[list[int]]]:
    """Distinct raw (prediction, reference) pairs of BMT's val_1 and val_2 files,
    and per video the indices of its pairs."""
    pairs: dict[tuple[str, str], int] = {}
    groups = []
    for split in ("val_1", "val_2"):
        refs = json.loads((data / "activitynet" / f"{split}.json").read_text())
        name = f"bmt_captioning_results_{split}_e26.json"
        preds = json.loads((data / "predictions" / name).read_text())["results"]
        for vid, events in preds.items():
            ref = refs.get(vid)
            if not ref:
                continue
            group = []
            for e in events:
                for s in ref["sentences"]:
                    group.append(pairs.setdefault((e["sentence"], s), len(pairs)))
            groups.append(group)
    return list(pairs), groups


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--pairs", type=int, default=0, help="at most this many pairs")
    ap.add_argument("--workers", type=int, default=2, help="jar processes")
    ap.add_argument("--no-jar", action="store_true", help="time the Python side only")
    ap.add_argument("--cold", action="store_true", help="time the first-use build")
    args = ap.parse_args()

    from densevid.metrics.tokenize import PTBTokenizer

    raw, groups = activitynet_pairs(args.data)
    tok = PTBTokenizer()(list(dict.fromkeys(t for p in raw for t in p)))
    pairs = [(tok[h], tok[r]) for h, r in raw]
    if args.pairs:
        pairs = pairs[: args.pairs]
        groups = [[i for i in g if i < args.pairs] for g in groups]
        groups = [g for g in groups if g]
    pair_groups = [[pairs[i] for i in g] for g in groups]
    n = len(dict.fromkeys(pairs))
    print(f"{n} distinct tokenised pairs, {len(groups)} videos")

    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        if args.cold:
            env["DENSEVID_CACHE"] = str(Path(tmp) / "cache")
        job = Path(tmp) / "job.json"
        job.write_text(json.dumps({"pairs": pairs, "groups": pair_groups}))
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", PYTHON_DRIVER, str(job)],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode:
            sys.exit(f"Python METEOR failed:\n{proc.stderr[-3000:]}")
        py = json.loads(proc.stdout)
        py_wall = time.perf_counter() - t
    print("Python METEOR (one process, one core):")
    if args.cold:
        print(f"  first use: resources converted in {py['build_s']:.1f} s")
    print(
        f"  import {py['import_s']:.2f} s, resources load {py['load_s']:.2f} s, "
        f"first call (numba {'on' if py['numba'] else 'off'}) {py['compile_s']:.2f} s"
    )
    print(
        f"  {n} pairs in {py['stats_s']:.2f} s = {n / py['stats_s']:,.0f} pairs/s; "
        f"{len(groups)} aggregates in {py['eval_s']:.3f} s"
    )
    print(
        f"  CPU time for the pairs {py['stats_cpu_s']:.2f} s = "
        f"{n / py['stats_cpu_s']:,.0f} pairs per CPU second"
    )
    print(
        f"  peak memory {py['peak_rss'] / 2**20:,.0f} MiB; process wall {py_wall:.1f} s"
    )
    if args.no_jar:
        return

    from densevid.metrics.scorers import Meteor

    t = time.perf_counter()
    jar = Meteor(n_workers=args.workers)
    jar.stats([("a man", "a man plays")])
    load = time.perf_counter() - t
    t = time.perf_counter()
    cpu = jar.cpu_seconds()
    stats = jar.stats(pairs)
    dt = time.perf_counter() - t
    cpu = jar.cpu_seconds() - cpu
    lines = dict(zip(pairs, stats, strict=True))
    t = time.perf_counter()
    aggregates = jar.corpus_scores([[lines[p] for p in g] for g in pair_groups])
    dt_eval = time.perf_counter() - t
    rss = jar.peak_rss_bytes()
    jar.close()
    print(f"jar ({args.workers} worker(s)):")
    print(f"  start and load {load:.2f} s")
    print(
        f"  {n} pairs in {dt:.2f} s = {n / dt:,.0f} pairs/s; "
        f"{len(groups)} aggregates in {dt_eval:.3f} s"
    )
    print(f"  CPU time for the pairs {cpu:.2f} s = {n / cpu:,.0f} pairs per CPU second")
    print(f"  peak memory {rss / 2**20:,.0f} MiB (JVMs)")
    bad = sum(a != b for a, b in zip(stats, py["stats"], strict=True))
    diff = max(abs(a - b) for a, b in zip(aggregates, py["aggregates"], strict=True))
    print(
        f"equality: {bad} of {len(stats)} statistics lines differ; "
        f"largest aggregate difference {diff:.3g}"
    )
    print(f"speed: Python {dt / py['stats_s']:.1f}x the jar's pairs/s")


if __name__ == "__main__":
    main()

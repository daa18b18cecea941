"""`densevid import` speed and peak memory on a large synthetic HDF5 file.

Writes a TSP-layout file (one (T, 512) float32 dataset per video, ActivityNet-like
ids) or an MDVC-layout file (<id>/i3d_features/{rgb,flow} and <id>/vggish_features)
of about --gb gigabytes, and an annotation file with each video's duration, then
runs ``densevid import`` on it in a child process and prints:

- the source: size, videos, rows;
- the import: seconds, MB/s and videos/s, the child's peak resident memory
  (``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``) beside that of a process that
  only imports densevid's CLI, h5py and numpy (the floor);
- a second run over the complete output (resume: every video skipped).

The file is read back right after it was written, so it is mostly in the page
cache when the machine's memory exceeds it: the speed is then that of the import,
not of the disk. Peak memory does not depend on that.

Usage:  .venv/bin/python bench/bench_import.py [--gb 4] [--layout tsp|mdvc]
            [--dir /tmp] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROWS_PER_VIDEO = 600  # ~10 min of TSP rows: large datasets, few files
TSP_STRIDE = 16 / 15
MDVC_STRIDE = 0.96


def video_ids(n: int) -> list[str]:
    """ActivityNet-shaped ids: 'v_' and 11 characters."""
    return [f"v_bench{i:06d}" for i in range(n)]


def write_source(path: Path, layout: str, gb: float, seed: int) -> tuple[int, int]:
    """Writes the synthetic file; returns (videos, rows per video)."""
    width = 512 if layout == "tsp" else 1024 + 1024 + 128
    per_video = ROWS_PER_VIDEO * width * 4
    n = max(1, int(gb * 1e9 / per_video))
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        for vid in video_ids(n):
            if layout == "tsp":
                f[vid] = rng.standard_normal((ROWS_PER_VIDEO, 512), np.float32)
                continue
            g = f.create_group(vid)
            for key, dim in (
                ("i3d_features/rgb", 1024),
                ("i3d_features/flow", 1024),
                ("vggish_features", 128),
            ):
                g[key] = rng.standard_normal((ROWS_PER_VIDEO, dim), np.float32)
    return n, ROWS_PER_VIDEO


def write_annotations(path: Path, n: int, rows: int, stride: float) -> None:
    """Durations the rows fill, one event each (the importer reads durations)."""
    duration = round(rows * stride + 0.5, 2)
    ann = {
        vid: {"duration": duration, "timestamps": [[0.0, 1.0]], "sentences": ["x"]}
        for vid in video_ids(n)
    }
    path.write_text(json.dumps(ann))


def child_run(argv: list[str]) -> tuple[float, int, str]:
    """Runs argv in a fresh process: (seconds, its peak RSS in bytes, stderr).

    RUSAGE_CHILDREN's maxrss is the largest of the waited-for children, so each
    measurement runs in its own helper process that starts one child."""
    code = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "dt = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
        "print(dt, rss, p.returncode)\n"
        "sys.stderr.write(p.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True
    )
    dt, rss, rc = proc.stdout.split()
    if int(rc) != 0:
        raise SystemExit(f"exit {rc}: {proc.stderr[-2000:]}")
    return float(dt), int(rss), proc.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=4.0, help="source size (GB)")
    ap.add_argument("--layout", choices=["tsp", "mdvc"], default="tsp")
    ap.add_argument("--dir", help="where to write (default: a temporary dir)")
    ap.add_argument("--keep", action="store_true", help="keep the files")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench_import_", dir=args.dir))
    try:
        src, ann, out = root / "src.h5", root / "ann.json", root / "feats"
        t = time.perf_counter()
        n, rows = write_source(src, args.layout, args.gb, seed=0)
        stride = TSP_STRIDE if args.layout == "tsp" else MDVC_STRIDE
        write_annotations(ann, n, rows, stride)
        size = src.stat().st_size
        print(
            f"source: {args.layout} layout, {size / 1e9:.2f} GB, {n} videos x "
            f"{rows} rows (written in {time.perf_counter() - t:.0f} s)"
        )
        _, floor, _ = child_run(
            [sys.executable, "-c", "import densevid.cli, h5py, numpy"]
        )
        cmd = [sys.executable, "-m", "densevid", "-q", "import", args.layout]
        cmd += [str(src), "-o", str(out), "--annotations", str(ann)]
        dt, rss, _ = child_run(cmd)
        written = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        print(
            f"import: {dt:.1f} s, {size / 1e6 / dt:.0f} MB/s, {n / dt:.1f} videos/s; "
            f"peak RSS {rss / 2**20:.0f} MiB (a process importing densevid.cli, "
            f"h5py, numpy: {floor / 2**20:.0f} MiB); output {written / 1e9:.2f} GB"
        )
        dt2, rss2, _ = child_run(cmd)
        print(f"resume (all complete): {dt2:.1f} s, peak RSS {rss2 / 2**20:.0f} MiB")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept in {root}")


if __name__ == "__main__":
    main()

"""Extraction on Ray against this machine's process pool (issue 25): same files?
how fast? what does Ray cost per video? how does it scale with workers?

On N synthetic videos (``densevid synth --preset small`` into a temporary directory
unless --videos is given), with a cheap extractor so that the engines' own costs
show (``pixels`` without its blob block, ``--option pixels.n_hues=0``):

1. ``--workers 2``: the local pool;
2. a Ray cluster of a head and a worker node on the loopback address, one CPU each
   (``--engine ray --address ...``): throughput, and its files compared byte for
   byte with the pool's;
3. the overhead per video: both engines again with ``subtitles`` (reads a .vtt and
   writes a JSON: almost no work) on the videos and on ten links to each, the
   difference over the extra videos; and the Ray driver's own CPU time per video,
   which bounds how many videos/s one driver can hand out whatever the cluster's
   size; the CPU time per video of the work itself (in this process, one thread);
4. scaling: a Ray of this machine started for the run with 1, 2 and 4 workers
   (``--engine ray --workers K``); the machine has 2 cores, so 4 is oversubscribed.

``--blobs`` keeps the blob block (about twice the work per video on these videos),
for figures less dominated by the engines' own costs. The 2 cores are shared with
other jobs: a float32 matmul baseline is printed before and after, to read the
figures against.

Each setting runs ``--repeat`` times (default 2) and the fastest run is kept.

Usage:  .venv/bin/python bench/bench_ray.py [--videos DIR] [--n-videos 200] [--blobs]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# a cluster of this machine only: Ray reads this when it is imported (ray_engine)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from bench_extract import make_corpus, matmul_gflops  # noqa: E402 (beside this file)
from densevid.features.extract import extract_features, videos_by_id  # noqa: E402
from densevid.features.ray_engine import RayEngine  # noqa: E402

CHEAP = {"pixels": {"n_hues": 0}}
OPTIONS: dict[str, dict] = dict(CHEAP)  # what the runs use (--blobs: the defaults)


@contextmanager
def loopback_cluster() -> Iterator[str]:
    """A head and a worker node, one CPU each, on 127.0.0.1: its address."""
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 1, "object_store_memory": 100 * 2**20}
    head = {**node, "include_dashboard": False}
    c = Cluster(initialize_head=True, head_node_args=head)
    try:
        c.add_node(**node)
        c.wait_for_nodes()
        yield c.address
    finally:
        c.shutdown()


REPEAT = [2]  # runs of each setting, the fastest kept (--repeat)


def run(videos, out: Path, features: str, **kw) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) of the fastest of ``REPEAT`` fresh
    extractions: the cores are shared, and other jobs only ever slow a run down."""
    best = (float("inf"), 0.0)
    for _ in range(REPEAT[0]):
        shutil.rmtree(out, ignore_errors=True)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        rep = extract_features(
            videos, out, features, options=OPTIONS, verbose=False, **kw
        )
        wall = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        assert not rep.failed, rep.summary()
        cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
        best = min(best, (wall, cpu))
    return best


N_COPIES = 10  # the overhead run's videos: this many links to each


def link_copies(paths: list[Path], dest: Path, n_copies: int) -> Path:
    """``n_copies`` hard links to each video and its .vtt under new ids: a corpus
    big enough for milliseconds per video to show over a run's start-up (symbolic
    links would be one video each: the video list drops duplicate targets)."""
    dest.mkdir()
    for k in range(n_copies):
        for p in paths:
            for src in (p, p.with_suffix(".vtt")):
                os.link(src, dest / f"{p.stem}_{k}{src.suffix}")
    assert len(videos_by_id([dest])) == n_copies * len(paths)
    return dest


def same_files(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    if names != sorted(p.name for p in b.iterdir()):
        return False
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=Path, help="a folder of videos (default: synth)")
    ap.add_argument("--n-videos", type=int, default=200)
    ap.add_argument("--scaling", default="1,2,4", help="Ray workers to try")
    ap.add_argument("--blobs", action="store_true", help="pixels with its blob block")
    ap.add_argument("--repeat", type=int, default=2, help="runs per setting, best kept")
    args = ap.parse_args()
    REPEAT[0] = args.repeat
    if args.blobs:
        OPTIONS.clear()
    gflops = matmul_gflops()
    print(f"matmul baseline: {gflops:.0f} GFLOP/s; pixels options: {OPTIONS}")
    root = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    try:
        t = time.perf_counter()
        videos = args.videos or make_corpus(root / "world", args.n_videos)
        paths = sorted(videos.glob("*.mp4"))
        n = len(paths)
        print(f"{n} videos in {videos} ({time.perf_counter() - t:.0f} s to make)")
        rows = []

        def row(name: str, wall: float, n_videos: int, note: str = "") -> None:
            rows.append((name, wall, n_videos / wall, note))
            print(f"  {name}: {wall:.1f} s, {n_videos / wall:.2f} videos/s {note}")

        # the work itself, in this process on one thread: CPU seconds per video
        import torch

        torch.set_num_threads(1)
        _, cpu_one = run([videos], root / "inproc", "pixels", workers=1)
        print(f"  pixels alone: {cpu_one / n:.3f} CPU s per video")
        many = link_copies(paths, root / "many", N_COPIES)
        n_many = N_COPIES * n

        local = root / "local"
        wall, _ = run([videos], local, "pixels", workers=2)
        row("pixels, --workers 2", wall, n)
        sub_pool, _ = run([videos], root / "sub_local", "subtitles", workers=2)
        many_pool, _ = run([many], root / "many_local", "subtitles", workers=2)

        with loopback_cluster() as address:
            engine = RayEngine(address=address)
            wall, _ = run([videos], root / "cluster", "pixels", engine=engine)
            same = same_files(local / "pixels", root / "cluster" / "pixels")
            row("pixels, Ray head + worker node", wall, n, f"(identical: {same})")
            sub_ray, _ = run([videos], root / "sub_ray", "subtitles", engine=engine)
            many_ray, cpu_ray = run(
                [many], root / "many_ray", "subtitles", engine=engine
            )
            same_sub = same_files(
                root / "sub_local" / "subtitles", root / "sub_ray" / "subtitles"
            )

        print(
            f"\noverhead: subtitles (almost no work) on {n_many} and on {n} videos, "
            "2 workers each; the difference over the extra videos"
        )
        for name, big, small in (
            ("--workers 2", many_pool, sub_pool),
            ("Ray cluster", many_ray, sub_ray),
        ):
            per = (big - small) / (n_many - n) * 1000
            print(
                f"  {name}: {small:.1f} s for {n}, {big:.1f} s for {n_many}: "
                f"{per:.1f} ms wall per video ({2 * per:.1f} ms of a worker's time)"
            )
        driver = cpu_ray / n_many
        print(
            f"  Ray driver CPU: {driver * 1000:.2f} ms per video: one driver hands "
            f"out at most ~{1 / driver:.0f} videos/s"
        )
        print(f"  subtitles files identical: {same_sub}")

        print("\nscaling: a Ray of this machine, 2 cores")
        base = None
        for k in (int(x) for x in args.scaling.split(",")):
            out = root / f"ray{k}"
            wall, _ = run([videos], out, "pixels", engine=RayEngine(workers=k))
            same = same_files(local / "pixels", out / "pixels")
            base = base or n / wall
            note = f"(x{n / wall / base:.2f}; identical: {same})"
            if k > (os.cpu_count() or 1):
                note += " oversubscribed"
            row(f"pixels, Ray, {k} workers", wall, n, note)

        print(f"\nmatmul baseline: {gflops:.0f} then {matmul_gflops():.0f} GFLOP/s")
        print("\n| run | wall s | videos/s | |\n| --- | --- | --- | --- |")
        for name, wall, rate, note in rows:
            print(f"| {name} | {wall:.1f} | {rate:.2f} | {note} |")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

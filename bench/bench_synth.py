"""Speed of the synthetic benchmark generator, per video-minute.

    .venv/bin/python bench/bench_synth.py [--videos 20] [--workers 2] [--minutes 1]

Generates ``--videos`` videos of exactly ``--minutes`` each (the default preset's
world otherwise) with ``--workers`` processes, and prints wall seconds per
video-minute, the same for one process on one video split by stage (plan, render,
audio, encode), and the extrapolation to 1,000 one-minute videos.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from densevid.synth import PRESETS, generate, plan_scene
from densevid.synth.audio import render_audio
from densevid.synth.dataset import write_mp4
from densevid.synth.render import render_frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=1.0, help="length of each video")
    args = ap.parse_args()
    seconds = 60.0 * args.minutes
    world = replace(PRESETS["default"], min_duration=seconds, max_duration=seconds)

    # stages, one process, one video
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    scene = plan_scene(rng, world)
    t1 = time.perf_counter()
    frames = list(render_frames(scene))
    t2 = time.perf_counter()
    audio = render_audio(scene, rng)
    t3 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        write_mp4(Path(tmp) / "one.mp4", iter(frames), audio, scene.fps)
    t4 = time.perf_counter()
    print(
        f"one {seconds:g} s video ({len(frames)} frames), one process: plan "
        f"{t1 - t0:.3f} s, render {t2 - t1:.2f} s, audio {t3 - t2:.2f} s, "
        f"encode {t4 - t3:.2f} s, total {t4 - t0:.2f} s"
    )

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        generate(tmp, args.videos, seed=0, preset=world, workers=args.workers)
        wall = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in Path(tmp, "videos").iterdir())
    video_minutes = args.videos * args.minutes
    per_minute = wall / video_minutes
    print(
        f"{args.videos} videos x {args.minutes:g} min with {args.workers} workers: "
        f"{wall:.1f} s wall = {per_minute:.2f} s per video-minute, "
        f"{size / video_minutes / 1e3:.0f} kB per video-minute"
    )
    print(
        f"extrapolated: 1,000 one-minute videos in {per_minute * 1000 / 60:.1f} min "
        f"with {args.workers} workers"
    )


if __name__ == "__main__":
    main()

"""Embedding a video collection's events for a search index (``densevid index``):
one video's events per pass of the matcher's video tower against the events of
consecutive videos batched together, in the same run.

Videos are random features of the recipe's stream width (184-d at 2 fps, 60 s) with
``--events`` events each, saved in a features directory as ``densevid extract``
would; the matcher is untrained at ``configs/matcher_synthetic.yaml``'s size (its
weights do not change the timings). Loading the features is included in both
figures, as ``densevid index`` pays it.

    .venv/bin/python bench/bench_index_embed.py --videos 400 --events 4
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from densevid.events import Event, VideoEvents
from densevid.features.cache import save_features
from densevid.matcher import MatcherConfig, MatchingModel
from densevid.search import embed_videos

DIM, FPS, DURATION = 184, 2.0, 60.0


def make_videos(root: Path, n: int, events: int, rng: np.random.Generator):
    videos = []
    for v in range(n):
        vid = f"v{v:06d}"
        rows = rng.normal(size=(int(DURATION * FPS), DIM)).astype(np.float32)
        save_features(root, "pixels", vid, rows, {"fps": FPS, "duration": DURATION})
        starts = np.sort(rng.uniform(0, DURATION - 8, events))
        videos.append(
            VideoEvents(
                vid,
                tuple(Event(float(s), float(s) + 6.0, "x") for s in starts),
                DURATION,
            )
        )
    return videos


def timed(matcher, videos, root: Path, batch_events: int) -> float:
    t0 = time.perf_counter()
    n = sum(len(v) for _, v, _ in embed_videos(matcher, videos, root, batch_events))
    assert n == sum(len(v.events) for v in videos)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, default=400)
    p.add_argument("--events", type=int, default=4, help="events per video")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    config = MatcherConfig(input_dim=DIM, vocab_size=200, features="pixels", blocks=[])
    matcher = MatchingModel(config).eval()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        videos = make_videos(root, args.videos, args.events, np.random.default_rng(0))
        timed(matcher, videos[:20], root, 512)  # warm-up
        alone = timed(matcher, videos, root, 1)
        batched = timed(matcher, videos, root, 512)
    n = args.videos * args.events
    print(f"{args.videos} videos, {n} events, {args.threads} thread(s)")
    print("| events per pass | s | events/s |")
    print("|---|---|---|")
    print(f"| one video's ({args.events}) | {alone:.2f} | {n / alone:.0f} |")
    print(f"| about 512 | {batched:.2f} | {n / batched:.0f} |")
    print(f"batched / one video at a time: {alone / batched:.2f}x faster")


if __name__ == "__main__":
    main()

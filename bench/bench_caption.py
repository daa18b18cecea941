"""End-to-end captioning speed: a 2-minute synthetic video through a model, split into
decoding, feature computation and generation, as a multiple of real time.

Decoding is timed on its own (the frames the model's visual extractor asks for);
features are the extractors' time minus that. Generation covers every window the
video needs. Each figure is the best of ``--repeat`` runs.

    .venv/bin/python bench/bench_caption.py                  # the bundled model
    .venv/bin/python bench/bench_caption.py --model runs/synthetic/best --threads 1
    .venv/bin/python bench/bench_caption.py --model runs/a/best+runs/b/best  # ensemble
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from densevid.caption import CaptionOptions, Timings, caption
from densevid.checkpoint import load_models
from densevid.decoding import DecodingOptions
from densevid.synth import PRESETS, make_video
from densevid.video import read_frames

VIDEO_S = 120.0  # the 2-minute video


def decode_seconds(path: Path, model) -> float:
    """Time to decode what the visual extractor decodes (pixels: fps * substeps
    frames per second at 4x the thumbnail side)."""
    opts = model.config.extractor_options.get(model.config.visual_features, {})
    fps = float(opts.get("fps", 2.0)) * int(opts.get("substeps", 4))
    side = 4 * int(opts.get("size", 16))
    tic = time.perf_counter()
    read_frames(path, fps=fps, size=(side, side))
    return time.perf_counter() - tic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--method", choices=["beam", "greedy"], default="beam")
    parser.add_argument("--threads", type=int, default=0, help="0: torch's default")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_models(args.model.split("+"), device="cpu")
    options = CaptionOptions(decoding=DecodingOptions(method=args.method))
    with tempfile.TemporaryDirectory() as tmp:
        config = replace(PRESETS["default"], min_duration=VIDEO_S, max_duration=VIDEO_S)
        make_video(tmp, "bench", np.random.SeedSequence(2026), config)
        path = Path(tmp) / "bench.mp4"
        best: Timings | None = None
        best_decode = float("inf")
        for _ in range(args.repeat):
            best_decode = min(best_decode, decode_seconds(path, model))
            t = Timings()
            events = caption(model, path, options, timings=t)
            if best is None or t.decode_and_features + t.generation < (
                best.decode_and_features + best.generation
            ):
                best = t
    assert best is not None
    total = best.decode_and_features + best.generation
    print(f"model {args.model}: {len(events)} events on a {VIDEO_S:.0f} s video")
    print(f"threads {torch.get_num_threads()}, decoding {args.method}")
    print(f"  decode      {best_decode:6.2f} s")
    print(f"  features    {best.decode_and_features - best_decode:6.2f} s")
    print(f"  generation  {best.generation:6.2f} s")
    speed = VIDEO_S / total
    print(f"  total       {total:6.2f} s = {speed:.1f}x faster than real time")


if __name__ == "__main__":
    main()

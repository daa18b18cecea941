"""Sparse sampling against full decoding on a 10-minute 720p H.264 video.

    .venv/bin/python bench/bench_decode.py [--minutes 10] [--fps 30] [--frames 100]

Writes the test video once (libx264, x264's default key-frame interval of 250 frames)
under /tmp/densevid_bench/, then times:
  - ``read_frames(n_frames=100)``: 100 frames uniformly over the video (seeks);
  - decoding every frame (PyAV, no conversion): the baseline a naive sampler pays;
  - decoding every frame to RGB, as ``read_frames()`` without sampling does.
Prints the ratio full / sparse (target: >= 10x) and full-decode frames/s.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import av
import numpy as np

from densevid.video import probe, read_frames

WIDTH, HEIGHT = 1280, 720
CACHE_DIR = Path("/tmp/densevid_bench")


def make_video(path: Path, minutes: float, fps: int, preset: str) -> None:
    """Moving texture with a sweeping bar: cheap to draw, not trivial to encode."""
    rng = np.random.default_rng(0)
    tile = rng.integers(0, 255, (HEIGHT // 8, WIDTH // 8, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(tile, 8, axis=0), 8, axis=1)
    n = int(minutes * 60 * fps)
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as c:
        s = c.add_stream("libx264", rate=fps, options={"preset": preset})
        s.width, s.height, s.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        s.thread_type = "AUTO"
        for i in range(n):
            img = np.roll(texture, (i * 3) % WIDTH, axis=1)
            x = (i * 7) % WIDTH
            img[:, x : x + 40] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    tmp.rename(path)


def decode_all(path: Path, to_rgb: bool) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for frame in c.decode(s):
            if to_rgb:
                frame.to_ndarray(format="rgb24")
            n += 1
    return n, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--frames", type=int, default=100, help="frames to sample")
    ap.add_argument("--preset", default="veryfast", help="x264 preset for the video")
    args = ap.parse_args()

    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / f"bench_{args.minutes:g}min_{args.fps}fps_{args.preset}.mp4"
    if not path.exists():
        t0 = time.perf_counter()
        make_video(path, args.minutes, args.fps, args.preset)
        print(f"wrote {path} in {time.perf_counter() - t0:.1f} s")
    info = probe(path)
    print(
        f"video: {info.width}x{info.height}, {info.duration:.1f} s, {info.fps:g} fps, "
        f"{info.n_frames} frames, {path.stat().st_size / 1e6:.1f} MB"
    )

    t0 = time.perf_counter()
    frames, _ = read_frames(path, n_frames=args.frames)
    sparse = time.perf_counter() - t0
    t0 = time.perf_counter()
    small, _ = read_frames(path, n_frames=args.frames, size=224, crop=True)
    sparse_small = time.perf_counter() - t0
    assert len(frames) == len(small) == args.frames

    n_all, full = decode_all(path, to_rgb=False)
    _, full_rgb = decode_all(path, to_rgb=True)
    print(f"read_frames(n_frames={args.frames}):              {sparse:7.2f} s")
    print(f"read_frames(n_frames={args.frames}, size=224, crop): {sparse_small:7.2f} s")
    print(f"decode all {n_all} frames:   {full:7.2f} s = {n_all / full:7.0f} frames/s")
    print(
        f"decode all to RGB:        {full_rgb:7.2f} s = "
        f"{n_all / full_rgb:7.0f} frames/s"
    )
    print(f"speed-up, sparse vs decode-all: {full / sparse:.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()

"""Sparse sampling against full decoding on a 10-minute 720p H.264 video.

    .venv/bin/python bench/bench_decode.py [--minutes 10] [--fps 30] [--frames 100]

Writes the test video once (libx264; key frames every ``--gop`` frames, default
x264's own 250 = 8.3 s at 30 fps) under /tmp/densevid_bench/, then times:
  - ``read_frames(n_frames=100)``: the exact frames on screen at 100 uniform times
    (seeks to the key frame before each, decodes forward, skipping frames nothing
    refers to until close to the target);
  - ``read_frames(n_frames=100, exact=False)``: the key frame at or before each;
  - decoding every frame (PyAV, no conversion): the baseline a naive sampler pays;
  - decoding every frame to RGB, as ``read_frames()`` without sampling does.
Prints the ratios full / sparse (target: >= 10x) and full-decode frames/s.
Exact sampling cannot beat about (video frames) / (100 x GOP / 2): with 250-frame
GOPs and 18,000 frames, under 2x; with 2 s GOPs, about 6x.
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


def make_video(path: Path, minutes: float, fps: int, preset: str, gop: int) -> None:
    """Moving texture with a sweeping bar: cheap to draw, not trivial to encode."""
    rng = np.random.default_rng(0)
    tile = rng.integers(0, 255, (HEIGHT // 8, WIDTH // 8, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(tile, 8, axis=0), 8, axis=1)
    n = int(minutes * 60 * fps)
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as c:
        options = {"preset": preset}
        if gop:
            options["g"] = str(gop)
        s = c.add_stream("libx264", rate=fps, options=options)
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


def decode_all(path: Path, to_rgb: bool) -> int:
    n = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for frame in c.decode(s):
            if to_rgb:
                frame.to_ndarray(format="rgb24")
            n += 1
    return n


def timed(fn, *args, **kwargs):
    """(result, wall s, CPU s of all threads): CPU time is the work done, which other
    processes on a loaded machine disturb much less than wall time."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--frames", type=int, default=100, help="frames to sample")
    ap.add_argument("--preset", default="veryfast", help="x264 preset for the video")
    ap.add_argument("--gop", type=int, default=0, help="key-frame interval, 0: x264's")
    args = ap.parse_args()

    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    gop = f"_g{args.gop}" if args.gop else ""
    path = CACHE_DIR / f"bench_{args.minutes:g}min_{args.fps}fps_{args.preset}{gop}.mp4"
    if not path.exists():
        t0 = time.perf_counter()
        make_video(path, args.minutes, args.fps, args.preset, args.gop)
        print(f"wrote {path} in {time.perf_counter() - t0:.1f} s")
    info = probe(path)
    print(
        f"video: {info.width}x{info.height}, {info.duration:.1f} s, {info.fps:g} fps, "
        f"{info.n_frames} frames, {path.stat().st_size / 1e6:.1f} MB, "
        f"key frames every {args.gop or 250} frames"
    )
    k = args.frames
    rows = []
    (frames, _), w, c = timed(read_frames, path, n_frames=k)
    rows.append((f"read_frames(n_frames={k})", w, c))
    (small, _), w, c = timed(read_frames, path, n_frames=k, size=224, crop=True)
    rows.append((f"read_frames(n_frames={k}, size=224, crop=True)", w, c))
    (keyed, key_times), w, c = timed(read_frames, path, n_frames=k, exact=False)
    n_keys = len(set(key_times.tolist()))
    rows.append((f"read_frames(n_frames={k}, exact=False) [{n_keys} key frames]", w, c))
    assert len(frames) == len(small) == len(keyed) == k
    n_all, w, c = timed(decode_all, path, to_rgb=False)
    rows.append((f"decode all {n_all} frames", w, c))
    _, w, c = timed(decode_all, path, to_rgb=True)
    rows.append(("decode all frames to RGB", w, c))
    print(f"{'':58} {'wall s':>8} {'CPU s':>8}")
    for name, w, c in rows:
        print(f"{name:58} {w:8.2f} {c:8.2f}")
    full_w, full_c = rows[3][1], rows[3][2]
    print(
        f"full decode: {n_all / full_w:.0f} frames/s wall, "
        f"{n_all / full_c:.0f} frames per CPU-second"
    )
    for name, i in (("exact", 0), ("key frames", 2)):
        print(
            f"speed-up of {name} sampling over decoding all: "
            f"{full_w / rows[i][1]:.1f}x wall, {full_c / rows[i][2]:.1f}x CPU "
            "(target >= 10x)"
        )


if __name__ == "__main__":
    main()

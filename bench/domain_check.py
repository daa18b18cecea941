"""How well does the out-of-domain rule (``densevid.domain``) separate the videos a
model was trained on from videos unlike them?

Two sets of videos go through what ``densevid caption`` runs before generating
(``densevid.caption.extract_streams`` then ``densevid.caption.check_domain``):

- synthetic videos of a held-out split (``densevid synth``): no warning expected;
- clips unlike the synthetic world, made here: pans, zooms and cuts across real
  photographs shipped with scikit-image (``skimage.data``), graphics, noise and flat
  colours: a warning expected on every one.

Prints one line per clip, then the warning counts and the distance percentiles of
each set beside the model's threshold.

``--fit-into CHECKPOINT`` instead computes the statistics of the train split's
features with the code ``densevid train`` runs (``Finetune.domain_stats``) and writes
them into the checkpoint's ``config.json`` (the bundled model's were made so).

    .venv/bin/pip install scikit-image   # the photographs; not a densevid dependency
    densevid synth data/domain --videos 800 --workers 2
    densevid extract data/domain/videos -o data/domain/features --features pixels \
        --option pixels.tint=true --option pixels.timing=true --workers 2
    .venv/bin/python bench/domain_check.py --synth data/domain \
        --features data/domain/features --fit-into src/densevid/models/default
    .venv/bin/python bench/domain_check.py --synth data/domain --split val,test \
        --clips data/domain/clips
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np
import torch

from densevid.domain import OutOfDomainWarning

FPS = 24  # frames per second of the clips (real videos' usual rate)
WIDTH, HEIGHT = 320, 240  # not square: real videos rarely are
SECONDS = 24.0  # the synthetic default preset's videos are 20-60 s
COLOUR_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "retina",
    "immunohistochemistry",
)
GREY_PHOTOS = ("camera", "brick", "grass", "coins", "moon")
GRAPHICS = ("logo", "colorwheel")  # drawn, not photographed: the nearest to a cartoon


def photo(name: str) -> np.ndarray:
    """One of scikit-image's bundled images as (H, W, 3) uint8 RGB."""
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.shape[2] == 4:  # RGBA over white
        alpha = img[:, :, 3:4].astype(np.float32) / 255
        img = (img[:, :, :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(img[:, :, :3])


def crop_resize(img: np.ndarray, cx: float, cy: float, scale: float) -> np.ndarray:
    """The window of ``scale`` times the image's size centred at (cx, cy) (fractions
    of the image), resized to the clip's size by nearest pixels (cheap, and the
    extractor averages areas anyway)."""
    h, w = img.shape[:2]
    ch, cw = max(2, int(h * scale)), max(2, int(w * scale))
    y0 = int(np.clip(cy * h - ch / 2, 0, h - ch))
    x0 = int(np.clip(cx * w - cw / 2, 0, w - cw))
    rows = y0 + (np.arange(HEIGHT) * ch // HEIGHT)
    cols = x0 + (np.arange(WIDTH) * cw // WIDTH)
    return img[rows][:, cols]


def camera_path(
    img: np.ndarray, n: int, start: tuple[float, float, float], end: tuple[float, ...]
) -> Iterator[np.ndarray]:
    """``n`` frames moving the window linearly from (cx, cy, scale) ``start`` to
    ``end``: a pan when the scales agree, a zoom when the centres do."""
    for t in np.linspace(0.0, 1.0, n):
        cx, cy, s = (a + (b - a) * t for a, b in zip(start, end, strict=True))
        yield crop_resize(img, cx, cy, s)


def pan(name: str) -> Callable[[int], Iterator[np.ndarray]]:
    return lambda n: camera_path(photo(name), n, (0.3, 0.35, 0.6), (0.7, 0.65, 0.6))


def zoom(name: str) -> Callable[[int], Iterator[np.ndarray]]:
    return lambda n: camera_path(photo(name), n, (0.5, 0.5, 1.0), (0.45, 0.4, 0.35))


def slideshow(names: tuple[str, ...]) -> Callable[[int], Iterator[np.ndarray]]:
    """Cuts between slow pans over several photographs, as scenes change in a film."""

    def frames(n: int) -> Iterator[np.ndarray]:
        per = n // len(names)
        for k, name in enumerate(names):
            m = per if k < len(names) - 1 else n - per * k
            yield from camera_path(photo(name), m, (0.4, 0.5, 0.7), (0.6, 0.5, 0.6))

    return frames


def noise(kind: str, seed: int) -> Callable[[int], Iterator[np.ndarray]]:
    """Fresh noise every frame: uniform RGB, grey, or smooth blotches of colour."""

    def frames(n: int) -> Iterator[np.ndarray]:
        rng = np.random.default_rng(seed)
        for _ in range(n):
            if kind == "rgb":
                yield rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
            elif kind == "grey":
                g = rng.integers(0, 256, (HEIGHT, WIDTH, 1), dtype=np.uint8)
                yield np.repeat(g, 3, axis=2)
            else:  # blotches: coarse colour noise scaled up
                small = rng.integers(0, 256, (HEIGHT // 40, WIDTH // 40, 3))
                yield np.kron(small, np.ones((40, 40, 1))).astype(np.uint8)

    return frames


def flat(rgb: tuple[int, int, int]) -> Callable[[int], Iterator[np.ndarray]]:
    frame = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    frame[:] = rgb
    return lambda n: (frame for _ in range(n))


def clip_recipes() -> dict[str, Callable[[int], Iterator[np.ndarray]]]:
    """Clip name -> frame generator: every clip expected to be out of domain."""
    recipes: dict[str, Callable[[int], Iterator[np.ndarray]]] = {}
    for name in COLOUR_PHOTOS + GREY_PHOTOS + GRAPHICS:
        recipes[f"pan_{name}"] = pan(name)
    for name in ("astronaut", "coffee", "rocket", "camera"):
        recipes[f"zoom_{name}"] = zoom(name)
    recipes["cuts_colour"] = slideshow(("chelsea", "rocket", "coffee", "astronaut"))
    recipes["cuts_grey"] = slideshow(("camera", "coins", "moon", "grass"))
    for kind in ("rgb", "grey", "blotches"):
        recipes[f"noise_{kind}"] = noise(kind, seed=len(recipes))
    for label, rgb in {
        "black": (0, 0, 0),
        "grey": (128, 128, 128),
        "white": (255, 255, 255),
        "red": (220, 30, 30),
        "blue": (30, 60, 220),
    }.items():
        recipes[f"flat_{label}"] = flat(rgb)
    return recipes


def write_clip(path: Path, frames: Iterator[np.ndarray]) -> None:
    """H.264 in MP4, video only (the bundled model reads no audio)."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"crf": "23"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_clips(out: Path) -> list[Path]:
    """Writes every recipe's clip into ``out`` (skipping those already there)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frames in clip_recipes().items():
        path = out / f"{name}.mp4"
        if not path.exists():
            part = out / f".{name}.part.mp4"
            write_clip(part, frames(int(SECONDS * FPS)))
            part.replace(path)
        paths.append(path)
    return paths


def distances(model, videos: list[Path]) -> list[tuple[str, float, bool]]:
    """(name, distance, warned) per video, by the code ``densevid caption`` runs."""
    from densevid.caption import check_domain, extract_streams
    from densevid.video import probe

    rows = []
    for path in videos:
        raw: dict[str, np.ndarray] = {}
        extract_streams(model, path, probe(path).duration, raw=raw)
        found = check_domain(model.config, raw)
        assert found is not None, "the model has no domain statistics"
        rows.append((path.stem, found.distance, found.out_of_domain))
    return rows


def events_written(model, videos: list[Path]) -> dict[str, int]:
    """Events ``densevid caption`` writes per video (default options), to see what
    the model says where the rule is silent."""
    from densevid.caption import caption

    counts = {}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore", OutOfDomainWarning)
        for path in videos:
            counts[path.stem] = len(caption(model, path).events)
    return counts


def summary(label: str, rows: list[tuple[str, float, bool]]) -> str:
    d = np.array([r[1] for r in rows])
    warned = sum(r[2] for r in rows)
    q = np.percentile(d, [0, 50, 90, 99, 100])
    return (
        f"{label}: {warned}/{len(rows)} warned; distance min {q[0]:.3g}, median "
        f"{q[1]:.3g}, p90 {q[2]:.3g}, p99 {q[3]:.3g}, max {q[4]:.3g}"
    )


def fit_into(checkpoint: Path, features: Path, train: Path) -> None:
    """Writes the domain statistics of ``train``'s videos into a checkpoint's
    config.json, leaving every other key (and the weights) as it was."""
    from densevid.events import load_annotations
    from densevid.training.finetune import Finetune

    path = checkpoint / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    extractor = config["visual_features"].split(",")[0]
    ids = list(load_annotations(train))
    config["domain_stats"] = Finetune.domain_stats(features, extractor, ids)
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    stats = config["domain_stats"]
    print(f"{path}: {len(ids)} videos of {train}, threshold {stats['threshold']:.4g}")
    print(f"training videos' distances: {stats['train_distances']}")


def main() -> None:
    from densevid.checkpoint import load_model
    from densevid.events import load_annotations

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="default")
    p.add_argument("--synth", type=Path, required=True, help="a densevid synth DIR")
    p.add_argument("--split", default="test", help="synthetic splits, comma list")
    p.add_argument("--clips", type=Path, help="where clips are made")
    p.add_argument("--features", type=Path, help="the synthetic videos' features")
    p.add_argument("--fit-into", type=Path, help="write statistics into CHECKPOINT")
    args = p.parse_args()
    if args.fit_into:
        fit_into(args.fit_into, args.features, args.synth / "train.json")
        return
    if args.clips is None:
        p.error("--clips DIR is needed to measure")

    model = load_model(args.model, device="cpu")
    stats = model.config.domain_stats
    print(f"model {args.model}: threshold {stats['threshold']:.4g} ({stats['rule']})")
    print(f"its training videos' distances: {stats['train_distances']}")
    ids = [v for s in args.split.split(",") for v in load_annotations(
        args.synth / f"{s}.json")]  # fmt: skip
    synth_videos = [args.synth / "videos" / f"{v}.mp4" for v in ids]
    tic = time.perf_counter()
    synth = distances(model, synth_videos)
    clip_paths = make_clips(args.clips)
    clips = distances(model, clip_paths)
    seconds = time.perf_counter() - tic
    n_events = events_written(model, clip_paths)
    print("clip, distance, warned, events the model writes on it:")
    for name, d, warned in sorted(clips, key=lambda r: r[1]):
        said = "warned" if warned else "NOT WARNED"
        print(f"  {name:28s} {d:10.4g}  {said:10s}  {n_events[name]} events")
    for name, d, warned in synth:
        if warned:
            print(f"  synthetic {name} warned: distance {d:.4g}")
    print(summary(f"synthetic ({args.split})", synth))
    print(summary("unlike the synthetic world", clips))
    print(f"distances of {len(synth) + len(clips)} videos in {seconds:.0f} s")


if __name__ == "__main__":
    main()

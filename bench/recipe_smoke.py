"""A CPU smoke run of a dataset recipe (configs/anet_*.yaml, configs/yc2_*.yaml) on
stand-in data: the recipe's own streams, annotation ids, durations and captions, with
random feature rows, and a tiny randomly initialised model instead of T5-base.
Streams the field distributes (TSP, I3D, VGGish) are written in their release's
layout and brought in by ``densevid import``, as a user would.

It checks what a user would otherwise find out on the GPU hours later: that the
recipe's stream names, dimensions and speech input fit together, that its optimiser
and decoding settings load, and that train -> predict -> eval runs end to end. The
numbers it prints mean nothing (random features); tests/test_recipes.py runs it.

    .venv/bin/python bench/recipe_smoke.py configs/anet_clip.yaml [--videos 8]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

from densevid.cli import main as densevid
from densevid.events import load_annotations, save_annotations
from densevid.features.cache import save_features, save_speech

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# the reference files whose ids, durations and captions stand in for each dataset
DATASETS = {
    "anet": ("activitynet/train.json", "activitynet/val_1.json"),
    "yc2": ("youcook2/yc2_train.json", "youcook2/yc2_val.json"),
}
# the width and rows per second of each stream as the field distributes it
STREAMS = {
    "clip": (768, 1.0),  # CLIP ViT-L/14 at 1 fps
    "tsp": (512, 15 / 16),  # 16 frames at 15 fps per row
    "i3d_rgb": (1024, 25 / 64),  # 64-frame stacks at 25 fps
    "i3d_flow": (1024, 25 / 64),
    "vggish": (128, 1 / 0.96),
    "logmel": (128, 1 / 0.96),
    "pixels": (64, 2.0),
}
# a model small enough for a CPU in seconds; everything else comes from the recipe
TINY = [
    "model.lm=",
    "tokenizer=",
    "vocab_size=300",
    "model.d_model=32",
    "model.d_ff=64",
    "model.d_kv=8",
    "model.n_heads=4",
    "model.n_layers=1",
    "model.n_decoder_layers=1",
    "model.n_temporal_layers=1",
    "model.n_temporal_heads=4",
    "model.n_frames=16",
    "model.max_speech_tokens=64",
    "model.max_target_tokens=64",
    "max_steps=2",
    "batch_size=2",
    "warmup_steps=1",
    "eval_every=0",
    "save_every=0",
    "log_every=1",
    "val_metrics=[F1]",
    "best_metric=F1",
    "val_batch_size=4",
    "decoding.method=greedy",
    "num_threads=1",
    "device=cpu",
]


def dataset_of(config: Path) -> str:
    name = config.stem.split("_")[0]
    if name not in DATASETS:
        raise SystemExit(f"{config}: no stand-in data for dataset {name!r}")
    return name


def write_stand_in(
    recipe: dict, dataset: str, root: Path, n_videos: int, shared: Path = SHARED
) -> None:
    """Annotations of ``n_videos`` real videos per split (from the reference data in
    ``shared``) and random features for every stream the recipe's model reads, with
    the stream's true row rate."""
    rng = np.random.default_rng(0)
    model = recipe.get("model", {})
    visual = model.get("visual_features", "pixels")
    names = list(visual) if isinstance(visual, list) else visual.split(",")
    names += [model["audio_features"]] if model.get("audio_features") else []
    speech = model.get("speech_features", "")
    sources = root / "sources"
    for split, rel in zip(("train", "val"), DATASETS[dataset], strict=True):
        videos = list(load_annotations(shared / rel).values())[:n_videos]
        save_annotations(videos, root / f"{split}.json")
        for video in videos:
            duration = float(video.duration)
            for name in names:
                dim, rate = STREAMS[name]
                n = max(2, int(duration * rate))
                rows = rng.normal(size=(n, dim)).astype(np.float32)
                if name in RELEASED:
                    RELEASED[name](sources, video.video_id, rows)
                    continue
                times = (np.arange(n) + 0.5) / rate
                meta = {"fps": rate, "duration": duration, "timestamps": times}
                save_features(root / "features", name, video.video_id, rows, meta)
            if speech:  # the captions stand in for the transcript
                segments = [
                    {"start": e.start, "end": max(e.end, e.start + 0.1), "text": e.text}
                    for e in video.events
                ]
                meta = {"duration": duration}
                save_speech(root / "features", speech, video.video_id, segments, meta)


def _tsp(sources: Path, vid: str, rows: np.ndarray) -> None:
    """TSP's release: one HDF5 file, a (T, 512) dataset per video id."""
    import h5py

    sources.mkdir(parents=True, exist_ok=True)
    with h5py.File(sources / "tsp_features.h5", "a") as f:
        f[vid] = rows


def _bmt(suffix: str, folder: str):
    """BMT's release: one .npy per video and stream (``v_<id>_rgb.npy``...)."""

    def write(sources: Path, vid: str, rows: np.ndarray) -> None:
        d = sources / folder
        d.mkdir(parents=True, exist_ok=True)
        np.save(d / f"{vid}{suffix}.npy", rows)

    return write


# streams written in their release's layout and imported: name -> writer
RELEASED = {
    "tsp": _tsp,
    "i3d_rgb": _bmt("_rgb", "i3d"),
    "i3d_flow": _bmt("_flow", "i3d"),
    "vggish": _bmt("", "vggish"),
}
# what ``densevid import`` reads for each released source
IMPORTS = {"tsp_features.h5": "tsp", "i3d": "i3d", "vggish": "vggish"}


def import_released(root: Path) -> None:
    """``densevid import`` of every released source written for the stand-in."""
    for source, fmt in IMPORTS.items():
        path = root / "sources" / source
        if not path.exists():
            continue
        argv = ["-q", "import", fmt, str(path), "-o", str(root / "features")]
        for split in ("train", "val"):
            argv += ["--annotations", str(root / f"{split}.json")]
        if densevid(argv) != 0:
            raise SystemExit(f"densevid import {fmt} failed")


def smoke(config: Path, root: Path, n_videos: int = 8) -> dict:
    """Runs the recipe end to end on stand-in data in ``root``; returns the
    training summary and the F1 of its predictions (meaningless: random rows)."""
    recipe = yaml.safe_load(config.read_text(encoding="utf-8"))
    write_stand_in(recipe, dataset_of(config), root, n_videos)
    import_released(root)
    paths = [
        f"train_annotations={root / 'train.json'}",
        f"val_annotations=[{root / 'val.json'}]",
        f"features={root / 'features'}",
        f"output_dir={root / 'run'}",
    ]
    argv = ["-q", "train", "--config", str(config), "--no-resume"]
    for item in [*paths, *TINY]:
        argv += ["--set", item]
    if densevid(argv) != 0:
        raise SystemExit(f"{config}: train failed")
    preds = root / "preds.json"
    argv = ["-q", "predict", str(root / "run" / "last"), "--features"]
    argv += [str(root / "features"), "--annotations", str(root / "val.json")]
    if densevid([*argv, "-o", str(preds), "--method", "greedy"]) != 0:
        raise SystemExit(f"{config}: predict failed")
    scores = root / "scores.json"
    argv = ["-q", "eval", "-s", str(preds), "-r", str(root / "val.json")]
    argv += ["--metrics", "F1", "--no-soda", "--json", str(scores)]
    if densevid(argv) != 0:
        raise SystemExit(f"{config}: eval failed")
    state = json.loads((root / "run" / "last" / "training_state.json").read_text())
    imported = sorted(
        d.name
        for d in (root / "features").iterdir()
        if any("format" in json.loads(j.read_text()) for j in d.glob("*.json"))
    )
    f1 = json.loads(scores.read_text())["F1"]
    return {"steps": state["step"], "F1": f1, "imported": imported}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--videos", type=int, default=8, help="per split")
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"{SHARED}: the reference data is needed for real ids")
    with tempfile.TemporaryDirectory() as tmp:
        result = smoke(args.config, Path(tmp), args.videos)
    print(
        f"{args.config}: {result['steps']} steps, F1 {result['F1']:.3f} (random rows)"
    )


if __name__ == "__main__":
    main()

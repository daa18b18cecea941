"""Measured speed of the dataset recipes (configs/anet_*.yaml, configs/yc2_*.yaml)
at their real size, for the GPU: `densevid train` itself (the recipe's loop, loader,
optimiser, batch 32 and bf16 autocast) with T5 v1.1-base dimensions, on stand-in
data of the recipe's shapes, then `densevid predict` with its beam search; and the
CLIP ViT-L/14 tower that extracts its frames.

Stand-in data as bench/recipe_smoke.py writes it (real ids, durations and captions;
random feature rows at each stream's true width and rate; released streams written
in their layout and imported), with transcripts of ``--speech-words-per-s`` (the
captions repeated over the video) so the encoder reads transcript-sized inputs.
Weights are random and built here: no download. The tokenizer is a BPE of T5's
vocabulary size (32,000 pieces) trained on the captions and filler words, so the
embedding and output layers are T5's size.

Prints, per recipe: steady training videos/s and steps/s (log records after the
first), peak GPU memory, beam-search ms per video, and the recipe's whole cost in
GPU-hours from them (its steps, plus one validation pass per ``eval_every`` over its
validation videos), then CLIP frames/s and the dataset's extraction hours at 1 fps.

    .venv/bin/python bench/bench_recipe_gpu.py configs/anet_clip.yaml --device cuda
"""

from __future__ import annotations

import argparse
import json
import random
import string
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from densevid.cli import main as densevid
from densevid.events import load_annotations, save_annotations
from densevid.features.cache import save_speech
from densevid.text import train_tokenizer
from densevid.training import load_config
from densevid.training.loop import LOG_NAME

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipe_smoke import DATASETS, SHARED, dataset_of, import_released, write_stand_in  # noqa: E402

T5_V1_1_BASE = [  # google/t5-v1_1-base's config.json
    "model.d_model=768",
    "model.d_ff=2048",
    "model.d_kv=64",
    "model.n_heads=12",
    "model.n_layers=12",
    "model.n_decoder_layers=12",
    "model.lm=",
]
T5_VOCAB = 32000
CLIP_L14 = dict(  # openai/clip-vit-large-patch14's vision tower
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=24,
    num_attention_heads=16,
    patch_size=14,
    image_size=224,
    projection_dim=768,
)


def tokenizer_of(captions: list[str], out: Path) -> Path:
    """A BPE tokenizer with T5's vocabulary size: the captions, then filler words
    until the merges reach that size."""
    rng = random.Random(0)
    filler = [
        " ".join("".join(rng.choices(string.ascii_lowercase, k=7)) for _ in range(8))
        for _ in range(12_000)
    ]
    tok = train_tokenizer(captions + filler, out, vocab_size=T5_VOCAB)
    print(f"tokenizer: {len(tok)} tokens")
    return out


def write_speech(root: Path, speech: str, words_per_s: float) -> None:
    """Transcripts of ``words_per_s`` words per second: the video's captions
    repeated, spread evenly over its duration."""
    for split in ("train", "val"):
        for video in load_annotations(root / f"{split}.json").values():
            duration = float(video.duration)
            words = " ".join(e.text for e in video.events).split() or ["silence"]
            n = max(1, int(duration * words_per_s))
            text = (words * (n // len(words) + 1))[:n]
            per = 10  # words per segment
            segments = [
                {
                    "start": duration * i / n,
                    "end": duration * min(n, i + per) / n,
                    "text": " ".join(text[i : i + per]),
                }
                for i in range(0, n, per)
            ]
            meta = {"duration": duration}
            save_speech(root / "features", speech, video.video_id, segments, meta)


def steady_rate(log: Path, batch: int) -> float:
    """Videos/s between the first and the last log record (the loop's records hold
    the rate since the start, so the first steps' set-up drops out)."""
    records = [json.loads(line) for line in log.read_text().splitlines()]
    records = [r for r in records if "videos_per_s" in r]
    if len(records) < 2:
        raise SystemExit(f"{log}: too few log records for a steady rate")
    a, b = records[0], records[-1]
    t_a = a["step"] * batch / a["videos_per_s"]
    t_b = b["step"] * batch / b["videos_per_s"]
    return (b["step"] - a["step"]) * batch / (t_b - t_a)


def bench_recipe(config: Path, args: argparse.Namespace, root: Path) -> None:
    recipe = yaml.safe_load(config.read_text(encoding="utf-8"))
    dataset = dataset_of(config)
    write_stand_in(recipe, dataset, root, args.videos, shared=args.data)
    import_released(root)
    speech = recipe["model"].get("speech_features", "")
    if speech:
        write_speech(root, speech, args.speech_words_per_s)
    captions = [
        e.text for v in load_annotations(root / "train.json").values() for e in v.events
    ]
    tok = tokenizer_of(captions, root / "tokenizer")
    val = list(load_annotations(root / "val.json").values())[: args.val_videos]
    save_annotations(val, root / "val_small.json")
    batch = int(recipe["batch_size"])
    for item in args.set:  # a smoke run's own batch
        if item.startswith("batch_size="):
            batch = int(item.split("=", 1)[1])
    for amp in args.amp:
        out = root / f"run_amp{int(amp)}"
        sets = [
            f"train_annotations={root / 'train.json'}",
            f"val_annotations=[{root / 'val_small.json'}]",
            f"features={root / 'features'}",
            f"output_dir={out}",
            f"tokenizer={tok}",
            *T5_V1_1_BASE,
            f"max_steps={args.steps}",
            f"warmup_steps={args.steps // 10}",
            "eval_every=0",
            "save_every=0",
            "val_metrics=[F1]",
            "best_metric=F1",
            f"log_every={args.log_every}",
            f"device={args.device}",
            f"amp={str(amp).lower()}",
            *args.set,
        ]
        argv = ["-q", "train", "--config", str(config), "--no-resume"]
        for s in sets:
            argv += ["--set", s]
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        if densevid(argv) != 0:
            raise SystemExit(f"{config}: train failed")
        peak = (
            torch.cuda.max_memory_allocated() / 2**30
            if args.device.startswith("cuda")
            else float("nan")
        )
        rate = steady_rate(out / LOG_NAME, batch)
        steps_per_s = rate / batch
        print(
            f"{config.stem} amp={amp}: train {rate:.1f} videos/s, "
            f"{steps_per_s:.2f} steps/s (batch {batch}), peak GPU memory "
            f"{peak:.2f} GiB"
        )
        if not amp:
            continue
        preds = root / "preds.json"
        argv = ["-q", "predict", str(out / "last"), "--features"]
        argv += [str(root / "features"), "--annotations", str(root / "val_small.json")]
        argv += ["-o", str(preds), "--device", args.device]
        argv += ["--batch-size", str(args.predict_batch)]
        save_annotations(val[:2], root / "val_warm.json")
        warm = [
            a if a != str(root / "val_small.json") else str(root / "val_warm.json")
            for a in argv
        ]
        densevid(warm)  # warm-up: the first call loads and compiles
        t0 = time.perf_counter()
        if densevid(argv) != 0:
            raise SystemExit(f"{config}: predict failed")
        per_video = (time.perf_counter() - t0) / len(val)
        cfg = load_config(config)  # the recipe's values, defaults filled in
        n_val = sum(
            len(load_annotations(args.data / rel))
            for rel in recipe_val_files(recipe, dataset)
        )
        if cfg.val_max_videos:
            n_val = min(n_val, cfg.val_max_videos)
        passes = cfg.max_steps // cfg.eval_every
        train_h = cfg.max_steps / steps_per_s / 3600
        val_h = passes * n_val * per_video / 3600
        print(
            f"{config.stem}: beam {cfg.decoding.beam_size} "
            f"{per_video * 1000:.0f} ms/video (batch {args.predict_batch}, incl. "
            f"loading); whole recipe: {cfg.max_steps} steps {train_h:.2f} h + "
            f"{passes} validation passes over {n_val} videos {val_h:.2f} h"
        )


def recipe_val_files(recipe: dict, dataset: str) -> list[str]:
    """The reference files the recipe validates on, as the stand-in data names
    them (one per validation file of the recipe)."""
    n = len(recipe["val_annotations"])
    if dataset == "anet":
        return ["activitynet/val_1.json", "activitynet/val_2.json"][:n]
    return [DATASETS[dataset][1]]


def bench_clip(args: argparse.Namespace) -> None:
    """CLIP ViT-L/14 (random weights) embedding frames as the ``clip`` extractor
    does: fp16 on CUDA, batch ``--clip-batch``, preprocessing included."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from densevid.features.clip import Preprocess, embed_frames

    device = torch.device(args.device)
    net = CLIPVisionModelWithProjection(CLIPVisionConfig(**CLIP_L14))
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    net = net.to(device=device, dtype=dtype).eval()
    frames = np.random.default_rng(0).integers(
        0, 255, size=(args.clip_frames, 256, 340, 3), dtype=np.uint8
    )
    pre = Preprocess()
    embed_frames(net, frames[: args.clip_batch], pre, batch_size=args.clip_batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    embed_frames(net, frames, pre, batch_size=args.clip_batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    fps = len(frames) / (time.perf_counter() - t0)
    print(f"clip ViT-L/14 {dtype}: {fps:.0f} frames/s (batch {args.clip_batch})")
    for dataset, files in DATASETS.items():
        seconds = sum(
            float(v.duration)
            for rel in files
            for v in load_annotations(args.data / rel).values()
        )
        print(
            f"{dataset}: {seconds / 3600:.0f} h of video at 1 fps: "
            f"{seconds / fps / 3600:.2f} GPU-h of CLIP (the network alone)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", type=Path, nargs="*")
    parser.add_argument("--data", type=Path, default=SHARED, help="reference data")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--videos", type=int, default=256, help="per split")
    parser.add_argument("--val-videos", type=int, default=32)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--predict-batch", type=int, default=16)
    parser.add_argument("--speech-words-per-s", type=float, default=2.0)
    parser.add_argument(
        "--amp", default="on", choices=["on", "off", "both"], help="bf16 autocast"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        help="more train overrides (a smoke "
        "run on the CPU: --set model.d_model=32 ...)",
    )
    parser.add_argument("--clip", action="store_true", help="also time CLIP")
    parser.add_argument("--clip-frames", type=int, default=512)
    parser.add_argument("--clip-batch", type=int, default=64)
    args = parser.parse_args()
    args.amp = {"on": [True], "off": [False], "both": [True, False]}[args.amp]
    if not args.data.is_dir():
        sys.exit(f"{args.data}: the reference data is needed for real ids")
    if args.device.startswith("cuda"):
        print(f"device {torch.cuda.get_device_name()}, torch {torch.__version__}")
    for config in args.configs:
        with tempfile.TemporaryDirectory() as tmp:
            bench_recipe(config, args, Path(tmp))
    if args.clip:
        bench_clip(args)


if __name__ == "__main__":
    main()

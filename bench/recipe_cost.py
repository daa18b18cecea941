"""What a dataset recipe costs on a GPU, estimated from its arithmetic: parameters
of each part of the model as the recipe builds it (T5 v1.1-base dimensions, built
here with random weights: no download), tokens per video from the dataset's real
captions, and training FLOPs ~ 6 x parameters x tokens each part sees.

No GPU measured these: they are upper-level estimates to plan with (the time at a
stated fraction of a GPU's peak), to be replaced by a measured steps/s.

    .venv/bin/python bench/recipe_cost.py configs/anet_clip.yaml --speech-tokens 400
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from densevid.events import load_annotations
from densevid.model import build_model
from densevid.text import train_tokenizer
from densevid.training import load_config

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TRAIN_FILES = {"anet": "activitynet/train.json", "yc2": "youcook2/yc2_train.json"}
T5_V1_1_BASE = dict(  # google/t5-v1_1-base's config.json
    d_model=768, d_ff=2048, d_kv=64, n_heads=12, n_layers=12, n_decoder_layers=12
)
T5_VOCAB = 32128
TOKENS_PER_WORD = 1.3  # SentencePiece pieces per English word, roughly
TIME_TOKENS_PER_EVENT = 2
PEAKS = {"A100 (bf16 312 TFLOP/s)": 312e12, "H100 SXM (bf16 989 TFLOP/s)": 989e12}
MFU = 0.35  # fraction of peak a well-fed transformer step reaches, for planning
CLIP_L14_PARAMS = 304e6  # CLIP ViT-L/14's vision tower
CLIP_L14_TOKENS = 257  # 16 x 16 patches of a 224 x 224 frame, plus the class token
VAL_FILES = {"anet": "activitynet/val_1.json", "yc2": "youcook2/yc2_val.json"}


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path)
    parser.add_argument(
        "--speech-tokens", type=int, default=400, help="transcript tokens per video"
    )
    args = parser.parse_args()
    cfg = load_config(args.config)
    dataset = args.config.stem.split("_")[0]
    videos = load_annotations(SHARED / TRAIN_FILES[dataset])
    words = [len(e.text.split()) for v in videos.values() for e in v.events]
    per_video = sum(words) * TOKENS_PER_WORD / len(videos)
    target = min(
        cfg.model.max_target_tokens,
        per_video + TIME_TOKENS_PER_EVENT * len(words) / len(videos) + 1,
    )
    # a word-level tokenizer with T5's vocabulary size, for the embedding tables
    tok = train_tokenizer(["a"], Path("/tmp/recipe_cost_tok"), vocab_size=50)
    model_cfg = replace(cfg.model, lm="", visual_dim=768, vocab_size=0, **T5_V1_1_BASE)
    model = build_model(model_cfg, tok)
    model.lm.resize_token_embeddings(T5_VOCAB + cfg.model.n_time_tokens)
    lm = model.lm
    encoder, decoder = count(lm.get_encoder()), count(lm.get_decoder())
    head, temporal = count(lm.lm_head), count(model.visual)
    speech = args.speech_tokens if cfg.model.speech_features else 0
    frames = cfg.model.n_frames
    flops = 6 * (encoder * speech + (decoder + head) * target + temporal * frames)
    steps = cfg.max_steps
    total = flops * steps * cfg.batch_size
    print(f"{args.config}: {len(videos)} training videos, {steps} x {cfg.batch_size}")
    print(
        f"parameters: T5 encoder {encoder / 1e6:.0f} M, decoder {decoder / 1e6:.0f} M, "
        f"LM head {head / 1e6:.0f} M, temporal encoder {temporal / 1e6:.0f} M"
    )
    print(
        f"tokens per video: {frames} frames, {speech} transcript, {target:.0f} target"
    )
    print(
        f"training FLOPs: {flops / 1e12:.2f} T per video, {total / 1e15:.0f} P in all"
    )
    val = load_annotations(SHARED / VAL_FILES[dataset])
    n_epochs = max(1, steps // max(1, cfg.eval_every or steps))
    # one beam-search pass over the validation videos per evaluation: encoders once,
    # the decoder once per generated token and beam
    beams = cfg.decoding.beam_size if cfg.decoding.method == "beam" else 1
    decode = (
        2 * (encoder * speech + temporal * frames)
        + 2 * beams * (decoder + head) * target
    )
    decoding = decode * len(val) * n_epochs
    work = {"training steps": total, f"validation ({n_epochs} passes)": decoding}
    if "clip" in cfg.model.visual_streams:
        seconds = sum(float(v.duration) for v in [*videos.values(), *val.values()])
        work["CLIP ViT-L/14 at 1 fps"] = 2 * CLIP_L14_PARAMS * CLIP_L14_TOKENS * seconds
    for what, amount in work.items():
        print(f"{what}: {amount / 1e15:.0f} PFLOP")
        for gpu, peak in PEAKS.items():
            hours = amount / (peak * MFU) / 3600
            print(f"  {gpu} at {MFU:.0%} of peak: {hours:.2f} GPU-hours")


if __name__ == "__main__":
    main()

"""Training and inference speed of the joint model on random inputs.

Prints training videos/s (forward + backward + AdamW step) for a model size, next to
forward-only videos/s measured in the same run (the ratio is what to compare across
machines), and inference seconds per video for greedy and beam search.

    .venv/bin/python bench/bench_train.py                     # tiny + default, CPU
    .venv/bin/python bench/bench_train.py --sizes real --device cuda   # t5-base dims

Sizes: tiny (tests), default (configs/synthetic.yaml), real (t5-base dimensions with
768-d features, random weights, no download). Peak GPU memory is printed on CUDA.
"""

from __future__ import annotations

import argparse
import time

import torch

from densevid.config import ModelConfig
from densevid.decoding import DecodingOptions, generate
from densevid.model import build_model, count_parameters
from densevid.text import train_tokenizer

WORDS = "a the red blue green small large circle square star moves left right grows"
SIZES = {
    "tiny": dict(
        d_model=64,
        d_ff=128,
        d_kv=16,
        n_heads=4,
        n_layers=2,
        n_decoder_layers=2,
        n_temporal_layers=1,
        n_temporal_heads=4,
        visual_dim=64,
    ),
    "default": dict(
        d_model=128,
        d_ff=512,
        d_kv=32,
        n_heads=4,
        n_layers=2,
        n_decoder_layers=2,
        n_temporal_layers=2,
        n_temporal_heads=4,
        visual_dim=1000,
    ),
    "real": dict(
        d_model=768,
        d_ff=3072,
        d_kv=64,
        n_heads=12,
        n_layers=12,
        n_decoder_layers=12,
        n_temporal_layers=12,
        n_temporal_heads=12,
        visual_dim=768,
    ),
}
TARGET_TOKENS = 96  # ~8 events of 10 tokens + times


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(size: str, device: torch.device, batch: int, steps: int, videos: int) -> None:
    torch.manual_seed(0)
    words = WORDS.split()
    captions = [" ".join(words[i : i + 5]) for i in range(len(words))] * 20
    tokenizer = train_tokenizer(captions, vocab_size=32000 if size == "real" else 500)
    config = ModelConfig(dropout=0.1, **SIZES[size])
    model = build_model(config, tokenizer).to(device).train()
    vocab = len(tokenizer)
    x = torch.randn(batch, config.n_frames, config.visual_dim, device=device)
    mask = torch.ones(batch, config.n_frames, dtype=torch.bool, device=device)
    labels = torch.randint(2, vocab, (batch, TARGET_TOKENS), device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    amp = device.type == "cuda"

    def train_step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(labels, visual=x, visual_mask=mask)
        loss = torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, vocab), labels.reshape(-1)
        )
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def forward_only() -> None:
        with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=amp):
            model(labels, visual=x, visual_mask=mask)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rates = {}
    for name, fn in [("train", train_step), ("forward", forward_only)]:
        fn()  # warm-up
        sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        sync(device)
        rates[name] = batch * steps / (time.perf_counter() - t0)
    print(
        f"{size:8s} {count_parameters(model) / 1e6:7.2f}M params  batch {batch}  "
        f"train {rates['train']:8.1f} videos/s  forward {rates['forward']:8.1f} "
        f"videos/s  (train/forward {rates['train'] / rates['forward']:.2f})"
    )
    model.eval()
    inputs = {
        "visual": x[:videos],
        "visual_mask": mask[:videos],
    }
    for options in [
        DecodingOptions(method="greedy", max_length=TARGET_TOKENS),
        DecodingOptions(method="beam", beam_size=4, max_length=TARGET_TOKENS),
    ]:
        generate(model, inputs, options)  # warm-up
        sync(device)
        t0 = time.perf_counter()
        seqs = generate(model, inputs, options).sequences
        sync(device)
        dt = (time.perf_counter() - t0) / len(seqs)
        print(
            f"{size:8s} inference {options.method:6s} {dt * 1000:8.1f} ms/video "
            f"({seqs.shape[1] - 1} tokens, batch {len(seqs)})"
        )
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
        print(f"{size:8s} peak GPU memory {peak:.2f} GiB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="tiny,default", help="tiny, default, real")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--videos", type=int, default=4, help="videos decoded at once")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}")
    for size in args.sizes.split(","):
        bench(size, device, args.batch, args.steps, args.videos)


if __name__ == "__main__":
    main()

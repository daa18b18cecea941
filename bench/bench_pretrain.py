"""Pretraining throughput from webdataset shards, against data loading alone.

Writes a corpus of random features (pixels-sized: 1216-d at 2 fps) with transcripts of
a few sentences into tar shards, the way ``densevid extract --webdataset`` packs them,
then measures in the same run:

1. loading: the shard stream decoded, sampled, tokenised, span-corrupted and collated
   by the DataLoader, nothing else (samples/s; the baseline);
2. pretraining: ``densevid.training.pretrain`` on that corpus (generative + denoising
   forward/backward and AdamW), samples/s over the steps after the first few.

The ratio pretraining / loading says how far the model is from being data-bound.
With ``--corpus`` the shards are a real corpus's (``densevid extract --webdataset``)
and the model is ``--config``'s (the pretraining grid's: a tokenizer it trained).

    .venv/bin/python bench/bench_pretrain.py                    # tiny and default
    .venv/bin/python bench/bench_pretrain.py --sizes default --workers 2 --threads 2
    .venv/bin/python bench/bench_pretrain.py \
        --corpus runs/pretrain_grid/data/corpus/features/corpus_1000 \
        --tokenizer runs/pretrain_grid/runs/tokenizer/tokenizer
"""

from __future__ import annotations

import argparse
import copy
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from densevid.features.cache import save_features, save_speech
from densevid.features.extract import pack_webdataset
from densevid.pretrain_data import Collator, PretrainTransform, ensure_sentinels
from densevid.shards import CorpusStream, ShardSource
from densevid.text import TimeTokenizer, load_tokenizer, train_tokenizer
from densevid.training import PretrainConfig, pretrain
from densevid.training.config import load_pretrain_config

FEATURE_DIM = 1216  # the pixels extractor's dimension
FPS = 2.0  # pixels rows per second
WORDS = [
    "now",
    "the",
    "red",
    "blue",
    "green",
    "small",
    "large",
    "circle",
    "square",
    "star",
    "triangle",
    "moves",
    "left",
    "right",
    "grows",
    "shrinks",
    "bounces",
    "leaves",
    "appears",
    "look",
    "here",
    "comes",
    "another",
    "one",
]
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
    ),
    "default": dict(  # configs/pretrain_synthetic.yaml
        d_model=128,
        d_ff=512,
        d_kv=32,
        n_heads=4,
        n_layers=2,
        n_decoder_layers=2,
        n_temporal_layers=2,
        n_temporal_heads=4,
    ),
}


def make_corpus(root: Path, n_videos: int, shard_size: int, seed: int = 0) -> Path:
    """Random features and 3-8 sentences of narration per 20-60 s video, in tars."""
    rng = np.random.default_rng(seed)
    ids = []
    for i in range(n_videos):
        duration = float(rng.uniform(20, 60))
        n = int(duration * FPS)
        x = rng.normal(0, 1, (n, FEATURE_DIM)).astype(np.float16)
        vid = f"v{i:06d}"
        meta = {"fps": FPS, "duration": duration}
        save_features(root, "pixels", vid, x, meta)
        starts = np.sort(rng.uniform(0, duration - 3, rng.integers(3, 9)))
        segs = [
            {
                "start": float(s),
                "end": float(s + rng.uniform(1, 3)),
                "text": " ".join(rng.choice(WORDS, rng.integers(4, 10))),
            }
            for s in starts
        ]
        save_speech(root, "subtitles", vid, segs, {"duration": duration})
        ids.append(vid)
    pack_webdataset(root, ["pixels", "subtitles"], ids, maxcount=shard_size)
    return root / "webdataset"


def loading_rate(shards: Path, cfg: PretrainConfig, tokenizer, n_batches: int) -> float:
    """Samples/s of the data path alone (what the training loop is fed)."""
    model_cfg = cfg.model
    model_cfg.speech_features = "subtitles"
    tt = TimeTokenizer(tokenizer, model_cfg.n_time_tokens)
    transform = PretrainTransform(
        model_cfg, tt, ensure_sentinels(tokenizer), denoise=True
    )
    stream = CorpusStream(
        ShardSource(str(shards), "pixels", "subtitles"),
        transform,
        seed=0,
        shuffle_buffer=cfg.shuffle_buffer,
        heldout_fraction=cfg.heldout_fraction,
    )

    class Adapter(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(stream)

    loader = torch.utils.data.DataLoader(
        Adapter(),
        batch_size=cfg.batch_size,
        collate_fn=Collator(tt.pad_id),
        num_workers=cfg.num_workers,
    )
    it = iter(loader)
    for _ in range(2):  # warm-up (workers start, first shard opens)
        next(it)
    t0 = time.perf_counter()
    for _ in range(n_batches):
        next(it)
    return n_batches * cfg.batch_size / (time.perf_counter() - t0)


def pretrain_rate(cfg: PretrainConfig, n_warmup: int) -> float:
    times: list[float] = []
    pretrain(cfg, on_step=lambda step, _: times.append(time.perf_counter()))
    steps = len(times) - n_warmup
    return steps * cfg.batch_size / (times[-1] - times[n_warmup - 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="tiny,default")
    parser.add_argument("--videos", type=int, default=256)
    parser.add_argument("--shard-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="timed pretrain steps")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0, help="dataloader workers")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--corpus", help="real shards instead of random ones")
    parser.add_argument("--tokenizer", help="with --corpus: the corpus's tokenizer")
    parser.add_argument(
        "--config",
        default="configs/pretrain_synthetic.yaml",
        help="with --corpus: the pretraining config (its model)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    if args.corpus:
        real_corpus(args)
        return

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        shards = make_corpus(root / "features", args.videos, args.shard_size)
        print(
            f"corpus: {args.videos} videos in {len(list(shards.glob('*.tar')))} "
            f"shards ({time.perf_counter() - t0:.1f} s to write)"
        )
        texts = [" ".join(WORDS)] * 4
        tokenizer = train_tokenizer(texts, root / "tok", vocab_size=200)
        n_warmup = 3
        for size in args.sizes.split(","):
            cfg = PretrainConfig(
                corpus=str(shards),
                output_dir=str(root / f"run_{size}"),
                tokenizer=str(root / "tok"),
                model=dict(SIZES[size], n_frames=100, dropout=0.1),
                max_steps=args.steps + n_warmup,
                batch_size=args.batch_size,
                warmup_steps=2,
                eval_every=0,
                save_every=0,
                log_every=0,
                heldout_fraction=0.0,
                num_workers=args.workers,
                num_threads=args.threads,
                device=args.device,
                shuffle_buffer=64,
            )
            load = loading_rate(shards, copy.deepcopy(cfg), tokenizer, 20)
            rate = pretrain_rate(cfg, n_warmup)
            print(
                f"{size:8s} loading only {load:8.1f} samples/s | pretraining "
                f"{rate:7.1f} samples/s | ratio {rate / load:.3f} "
                f"(batch {args.batch_size}, workers {args.workers}, "
                f"threads {args.threads}, {args.device})"
            )


def real_corpus(args: argparse.Namespace) -> None:
    """Loading against pretraining on a real corpus with a config's model."""
    if not args.tokenizer:
        raise SystemExit("--corpus needs --tokenizer (the one the corpus's runs use)")
    n_warmup = 3
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_pretrain_config(
            args.config,
            [
                f"corpus={args.corpus}",
                f"tokenizer={args.tokenizer}",
                f"output_dir={tmp}/run",
                f"max_steps={args.steps + n_warmup}",
                f"batch_size={args.batch_size}",
                f"num_workers={args.workers}",
                f"num_threads={args.threads}",
                f"device={args.device}",
                "eval_every=0",
                "save_every=0",
                "log_every=0",
                "heldout_fraction=0.0",
            ],
        )
        tokenizer = load_tokenizer(args.tokenizer, cfg.model.n_time_tokens)
        load = loading_rate(Path(args.corpus), copy.deepcopy(cfg), tokenizer, 20)
        rate = pretrain_rate(cfg, n_warmup)
    print(
        f"{args.corpus}: loading only {load:.1f} videos/s | pretraining "
        f"{rate:.1f} videos/s | ratio {rate / load:.3f} (batch {args.batch_size}, "
        f"workers {args.workers}, threads {args.threads}, {args.device})"
    )


if __name__ == "__main__":
    main()

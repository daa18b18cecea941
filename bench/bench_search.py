"""How the search index grows: build time, size on disk and query latency at 10k,
100k and 1M events (docs/results.md, "Search by text").

Events are random: unit vectors of the matcher's dimension (the worst case for an
inverted file, whose lists follow the data's clusters) and captions drawn from the
synthetic grammar's words, spread over videos of 10 events. Each size is built
twice, with the exact inner-product index ("flat") and the inverted file ("ivf",
``4 sqrt(n)`` lists, searched ``nprobe`` deep), through ``densevid.search``'s own
``write_index``; queries are sentences of the same words, timed one at a time
(text tower, BM25, vector search and ranking: what ``densevid search`` does after
loading), after a warm-up: combined (``text_weight`` 0.5), embedding only and text
only. The IVF rows also give recall@10 of the exact index's embedding-only top 10.

    .venv/bin/python bench/bench_search.py --sizes 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from densevid.events import Event, VideoEvents
from densevid.matcher import MatcherConfig, MatchingModel
from densevid.search import SearchOptions, open_index, write_index
from densevid.text import train_tokenizer

WORDS = [
    *("small", "big", "little", "large", "red", "green", "blue", "yellow", "purple"),
    *("orange", "white", "pink", "circle", "square", "triangle", "diamond", "star"),
    *("moves", "left", "right", "up", "down", "bounces", "shakes", "blinks", "grows"),
    *("shrinks", "appears", "leaves", "the", "scene", "turns", "stops", "slowly"),
    "quickly",
]
EVENTS_PER_VIDEO = 10
N_QUERIES = 200


def make_matcher(d_embed: int) -> MatchingModel:
    """An untrained matcher of the recipe's size (its weights do not change the
    timings), with a tokenizer over the words."""
    tok = train_tokenizer([" ".join(WORDS)] * 4, vocab_size=200)
    config = MatcherConfig(input_dim=184, vocab_size=len(tok), d_embed=d_embed)
    config.pad_id = int(tok.pad_token_id)
    model = MatchingModel(config).eval()
    model.tokenizer = tok
    return model


def rows(n: int, d: int, rng: np.random.Generator):
    for v in range(0, n, EVENTS_PER_VIDEO):
        m = min(EVENTS_PER_VIDEO, n - v)
        vecs = rng.normal(size=(m, d)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        events = tuple(
            Event(2.0 * i, 2.0 * i + 1.5, " ".join(rng.choice(WORDS, 6)))
            for i in range(m)
        )
        yield VideoEvents(f"v{v // EVENTS_PER_VIDEO:07d}", events, 30.0), vecs, None


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--nprobe", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--kinds", nargs="+", default=["flat", "ivf"])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    matcher = make_matcher(args.dim)
    qrng = np.random.default_rng(1)
    queries = [" ".join(qrng.choice(WORDS, 5)) for _ in range(N_QUERIES)]
    print(
        "| events | vectors | build (s) | on disk (MB) | both p50 (ms) | both p95 | "
        "embedding p50 | text p50 | recall@10 of exact |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    root = Path(tempfile.mkdtemp(prefix="bench_search_"))
    try:
        for n in args.sizes:
            exact: list[list[tuple[str, float]]] = []
            for kind in args.kinds:
                out = root / f"{kind}_{n}"
                t0 = time.perf_counter()
                write_index(
                    matcher,
                    rows(n, args.dim, np.random.default_rng(0)),
                    out,
                    vector_index=kind,
                )
                build = time.perf_counter() - t0
                with open_index(out) as index:
                    emb = SearchOptions(k=10, text_weight=0.0, nprobe=args.nprobe)
                    times = {}
                    for w in (0.5, 0.0, 1.0):
                        options = SearchOptions(k=10, text_weight=w, nprobe=args.nprobe)
                        index.search(queries[:5], options)  # warm-up
                        times[w] = []
                        for q in queries:
                            t = time.perf_counter()
                            index.search(q, options)
                            times[w].append((time.perf_counter() - t) * 1000)
                    found = [
                        [(h.video_id, h.start) for h in hits]
                        for hits in index.search(queries, emb)
                    ]
                if kind == "flat":
                    exact, recall = found, "1 (exact)"
                elif exact:
                    hit = [
                        len(set(a) & set(b)) / 10
                        for a, b in zip(exact, found, strict=True)
                    ]
                    recall = f"{np.mean(hit):.3f}"
                else:
                    recall = "-"
                p50 = {w: np.percentile(t, 50) for w, t in times.items()}
                print(
                    f"| {n:,} | {kind} | {build:.1f} | {dir_size(out) / 1e6:.0f} | "
                    f"{p50[0.5]:.1f} | {np.percentile(times[0.5], 95):.1f} | "
                    f"{p50[0.0]:.1f} | {p50[1.0]:.1f} | {recall} |",
                    flush=True,
                )
                shutil.rmtree(out)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

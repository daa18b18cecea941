"""The objectness threshold of the two-stage baseline's proposals, chosen on the
validation split: proposal F1 (averaged over the tIoU thresholds 0.3-0.9, as
``densevid eval`` reports it) for each ``--min-score`` on a grid.

Greedy NMS visits proposals best first, so the proposals kept at a threshold are
those kept from all of them (``min_score`` 0) that score at least that much (and
boundary refinement moves each alone): one decoding serves the whole grid.

    .venv/bin/python bench/proposal_threshold.py CHECKPOINT FEATURES VAL_JSON
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from densevid.checkpoint import load_model
from densevid.config import DecodingOptions, ProposalOptions
from densevid.data import VideoDataset
from densevid.events import Event, VideoEvents, load_annotations
from densevid.metrics import evaluate
from densevid.proposals import propose_dataset

GRID = (*(round(0.05 * i, 2) for i in range(1, 20)), 0.97, 0.99)  # 0.05 .. 0.99


def sweep(
    checkpoint: str,
    features: str,
    annotations: str,
    options: ProposalOptions | None = None,
    grid: tuple[float, ...] = GRID,
) -> list[dict[str, float]]:
    """Per threshold: precision, recall, F1 and proposals per video."""
    options = options or ProposalOptions()
    torch.set_num_threads(1)
    model = load_model(checkpoint)
    videos = load_annotations(annotations)
    data = VideoDataset(videos, features, model.config, model.time_tokenizer)
    every = replace(options, min_score=0.0, max_proposals=10**6)
    # boundaries refined as densevid predict --two-stage does by default
    refine = DecodingOptions().refine_frames
    found = propose_dataset(model, data, every, batch_size=16, refine_frames=refine)
    rows = []
    for t in grid:
        preds = {}
        for video_id, proposals in found.items():
            kept = sorted(p for p in proposals if p[2] >= t)
            if not kept:
                kept = [max(proposals, key=lambda p: p[2])]
            kept = sorted(kept, key=lambda p: -p[2])[: options.max_proposals]
            events = tuple(Event(s, e, "x", p) for s, e, p in sorted(kept))
            preds[video_id] = VideoEvents(video_id, events, videos[video_id].duration)
        scores = evaluate(
            preds, videos, metrics=("Recall", "Precision", "F1"), soda=False
        )
        n = sum(len(v.events) for v in preds.values()) / len(preds)
        rows.append(
            {
                "min_score": t,
                "Precision": scores["Precision"],
                "Recall": scores["Recall"],
                "F1": scores["F1"],
                "per_video": n,
            }
        )
    return rows


def best_min_score(rows: list[dict[str, float]]) -> float:
    """The threshold of the best F1 (the lower of equals)."""
    return max(rows, key=lambda r: (r["F1"], -r["min_score"]))["min_score"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("features")
    parser.add_argument("annotations")
    args = parser.parse_args()
    rows = sweep(args.checkpoint, args.features, args.annotations)
    print("| min_score | precision | recall | F1 | proposals/video |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['min_score']:.2f} | {r['Precision']:.4f} | {r['Recall']:.4f} "
            f"| {r['F1']:.4f} | {r['per_video']:.2f} |"
        )
    print(f"best: {best_min_score(rows)}")


if __name__ == "__main__":
    main()

"""Search by paraphrase on the synthetic benchmark (docs/results.md, "Search by text").

Queries are the narration cues of a split that paraphrase an event ("the circle is
so bouncy" for "The small red circle bounces."): the synthetic world draws them from
its own phrasebook (densevid.synth.language.NARRATION), apart from the captions'
grammar, so a query rarely shares more than a noun or a colour with its event's
caption. Which event a cue paraphrases is known by drawing each video's scene again
from its seed (``narration_links``); the cues drawn are checked against the
``.vtt`` files and the events against the split's annotations, so the queries are
exactly the dataset's.

For each matcher (two seeds) and each index (the predictions of a captioning model,
and the reference events: errors of captioning apart from errors of matching), the
queries are searched three ways: caption text only (BM25), the joint embedding
only, and both (``text_weight`` chosen on the validation split's queries over its
reference events), and recall at 1, 5 and 10 of the video and of the event (tIoU >=
0.5 with the paraphrased event) is printed as a markdown table.

    .venv/bin/python bench/search_experiment.py --synth data/synth \
        --features data/synth/features --predictions test_preds.json \
        --matchers runs/matcher_s0/best runs/matcher_s1/best --out runs/search_exp
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import webvtt

from densevid.events import load_annotations
from densevid.matcher import load_matcher
from densevid.metrics.retrieval import retrieval_recall
from densevid.search import build_index, open_index, read_manifest, read_videos_events
from densevid.synth.dataset import PRESETS, video_seed
from densevid.synth.language import caption, narration_links
from densevid.synth.world import plan_scene

WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # text_weight tried on val
K_SEARCH = 100  # events ranked per query (enough for 10 distinct videos)
N_CANDIDATES = 200

Target = tuple[str, float, float]


def paraphrase_queries(
    synth: Path, split: str, seed: int = 0, preset: str = "default"
) -> tuple[list[str], list[Target]]:
    """The split's narration cues that paraphrase an event, and that event."""
    refs = load_annotations(synth / f"{split}.json")
    queries, targets = [], []
    for vid, ref in refs.items():
        index = int(vid.removeprefix(f"v_{split}"))
        plan, text, voice, _ = (
            np.random.default_rng(s) for s in video_seed(seed, split, index).spawn(4)
        )
        scene = plan_scene(plan, PRESETS[preset])
        events = [(round(a.start, 2), round(a.end, 2)) for a in scene.actions]
        captions = [caption(scene, a, text) for a in scene.actions]
        if events != [(e.start, e.end) for e in ref.events] or captions != [
            e.text for e in ref.events
        ]:
            sys.exit(f"{vid}: scene drawn again differs from {split}.json: wrong seed?")
        cues = narration_links(scene, voice)
        vtt = [c.text for c in webvtt.read(synth / "videos" / f"{vid}.vtt")]
        if vtt != [c[2] for c in cues]:
            sys.exit(f"{vid}: narration drawn again differs from its .vtt")
        for _, _, cue, action in cues:
            if action is not None:
                queries.append(cue)
                targets.append((vid, *events[action]))
    return queries, targets


def ensure_index(matcher_dir: str, events_file: str, features: str, out: Path) -> Path:
    if not (out / "manifest.json").is_file():
        build_index(
            load_matcher(matcher_dir),
            read_videos_events([events_file]),
            features,
            out,
            overwrite=True,
        )
    read_manifest(out)
    return out


def recall(index_dir: Path, queries: list[str], targets: list[Target], w: float):
    with open_index(index_dir) as index:
        t0 = time.perf_counter()
        hits = index.search(
            queries, k=K_SEARCH, n_candidates=N_CANDIDATES, text_weight=w
        )
        ms = (time.perf_counter() - t0) * 1000 / len(queries)
    rankings = [[(h.video_id, h.start, h.end) for h in hs] for hs in hits]
    return retrieval_recall(rankings, targets), ms


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--synth", required=True, type=Path)
    p.add_argument("--features", required=True)
    p.add_argument("--predictions", required=True, help="predictions on the split")
    p.add_argument("--matchers", nargs="+", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--split", default="test")
    p.add_argument("--seed", type=int, default=0, help="the synthetic set's seed")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)

    val_q, val_t = paraphrase_queries(args.synth, "val", args.seed)
    queries, targets = paraphrase_queries(args.synth, args.split, args.seed)
    print(f"{len(queries)} {args.split} queries, {len(val_q)} val queries")
    sources = {
        "predictions": args.predictions,
        "references": str(args.synth / f"{args.split}.json"),
    }
    results = []
    for m, matcher in enumerate(args.matchers):
        name = f"m{m}"
        val_index = ensure_index(
            matcher,
            str(args.synth / "val.json"),
            args.features,
            args.out / f"{name}_val_references",
        )
        tuned = {w: recall(val_index, val_q, val_t, w)[0] for w in WEIGHTS}

        def score(r):
            return np.mean([r[f"event_R@{k}"] for k in (1, 5, 10)])

        best_w = max(WEIGHTS, key=lambda w: score(tuned[w]))
        print(
            f"{matcher}: val text_weight "
            + " ".join(f"{w}:{score(r):.3f}" for w, r in tuned.items())
            + f" -> {best_w}"
        )
        for source, events in sources.items():
            index_dir = ensure_index(
                matcher, events, args.features, args.out / f"{name}_{source}"
            )
            for mode, w in (("text", 1.0), ("embedding", 0.0), ("both", best_w)):
                if mode == "text" and m > 0:
                    continue  # no matcher involved: the same for every seed
                r, ms = recall(index_dir, queries, targets, w)
                row = dict(
                    matcher=matcher, index=source, mode=mode, text_weight=w, ms=ms, **r
                )
                results.append(row)
                print(json.dumps(row))
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    cols = [f"video_R@{k}" for k in (1, 5, 10)] + [f"event_R@{k}" for k in (1, 5, 10)]
    print("\n| index | matching | matcher | " + " | ".join(cols) + " |")
    print("|---" * (3 + len(cols)) + "|")
    for r in results:
        who = "-" if r["mode"] == "text" else r["matcher"]
        mode = r["mode"] + (f" (w={r['text_weight']})" if r["mode"] == "both" else "")
        vals = " | ".join(f"{r[c]:.3f}" for c in cols)
        print(f"| {r['index']} | {mode} | {who} | {vals} |")


if __name__ == "__main__":
    main()

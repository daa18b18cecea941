"""What time tokens alone cost: the references, each time snapped to N relative bins
and back, each caption said the usual way, scored against the references.

This is the best any model writing N time tokens can do on a split. It compares the
starting design's floor quantisation, ``k = floor(t / d * (N - 1))`` (docs/design.md),
with the rounding ``densevid.text.quantize_time`` uses; both decode
``t = k * d / (N - 1)``.

    .venv/bin/python bench/quantisation_ceiling.py data/synth/test.json --bins 50 100
"""

from __future__ import annotations

import argparse
import math
import time

from densevid.events import Event, VideoEvents, load_annotations
from densevid.metrics import evaluate
from densevid.synth.language import usual_wording

METRICS = ("SODA_c", "METEOR", "Precision", "Recall", "F1")
SNAPS = {
    "floor": lambda x: math.floor(x),
    "round": lambda x: math.floor(x + 0.5),
}


def snapped(refs: dict[str, VideoEvents], n_bins: int, snap) -> dict[str, VideoEvents]:
    out = {}
    for vid, video in refs.items():
        d = float(video.duration)
        events = []
        for e in video:
            k0, k1 = (
                min(max(snap(t / d * (n_bins - 1)), 0), n_bins - 1)
                for t in (e.start, e.end)
            )
            if k1 > k0:  # what parsing keeps
                events.append(
                    Event(k0 * d / (n_bins - 1), k1 * d / (n_bins - 1), e.text)
                )
        usual = tuple(Event(e.start, e.end, usual_wording(e.text)) for e in events)
        out[vid] = VideoEvents(vid, usual)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("annotations", help="reference file with durations")
    parser.add_argument("--bins", type=int, nargs="+", default=[100])
    args = parser.parse_args()
    refs = load_annotations(args.annotations)
    print(f"{args.annotations}: {len(refs)} videos")
    print(f"{'bins':>5} {'snap':>6} " + " ".join(f"{m:>9}" for m in METRICS))
    for n in args.bins:
        for name, snap in SNAPS.items():
            t0 = time.perf_counter()
            scores = evaluate(snapped(refs, n, snap), refs, metrics=METRICS)
            row = " ".join(f"{scores[m]:9.4f}" for m in METRICS)
            print(f"{n:5d} {name:>6} {row}   ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()

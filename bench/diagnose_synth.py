"""Where a model's errors on the synthetic benchmark come from: finding events
(localisation) or saying what happens (recognition).

For every reference event, the prediction with the highest tIoU is its match.
Localisation: the share of references matched at each tIoU, and the start/end errors
of matches at tIoU >= 0.3 (seconds and time bins), and per action of the reference
the share found at tIoU >= 0.5 and 0.9 and the median boundary errors. Recognition:
for matches at tIoU >= 0.5, how often the caption gets each content word right
(size, colour, shape, action, direction of a move), read off the benchmark's small
grammar, and whose object it names: the reference's, another object of the video's
references (the event was found but given to the wrong object), or one none of them
names; and, for those others, whether they share the reference's colour (two objects
of one colour share a hue bin of the ``pixels`` blobs block, so the features cannot
tell them apart there) or its shape, or neither.

    .venv/bin/python bench/diagnose_synth.py preds.json data/synth/test.json
"""

from __future__ import annotations

import argparse
import re

import numpy as np

from densevid.events import load_annotations, load_submission, match_video_ids
from densevid.metrics.densevid import tiou_matrix
from densevid.synth.world import COLOUR_NAMES, SHAPES

TIOUS = (0.3, 0.5, 0.7, 0.9)
N_BINS = 100  # to express boundary errors in time bins
SIZES = {"small": "small", "little": "small", "big": "big", "large": "big"}
# first matching pattern wins: "gets bigger" is grow, "slows down and stops" is stop
ACTIONS = (
    ("stop", r"\bstops?\b|\bstop\b"),
    ("appear", r"\bappears\b|\bshows up\b"),
    ("leave", r"\bleaves\b|\bexits\b"),
    ("move", r"\bmoves\b|\bslides\b"),
    ("grow", r"\bgrows\b|\bgets bigger\b"),
    ("shrink", r"\bshrinks\b|\bgets smaller\b"),
    ("change_colour", r"\bturns\b|\bchanges colour\b|\bbecomes\b"),
    ("bounce", r"\bbounces\b|\bjumps\b"),
    ("shake", r"\bshakes\b|\bwobbles\b"),
    ("blink", r"\bblinks\b|\bflashes\b"),
)
DIRECTIONS = {"left": "left", "right": "right", "up": "up", "upward": "up"}
DIRECTIONS |= {"down": "down", "downward": "down"}


def content(text: str) -> dict[str, str | None]:
    """The content words of a synthetic caption (None where it has none)."""
    words = re.findall(r"[a-z]+", text.lower())
    action = next((k for k, rx in ACTIONS if re.search(rx, text.lower())), None)
    colours = [w for w in words if w in COLOUR_NAMES]
    return {
        "size": next((SIZES[w] for w in words if w in SIZES), None),
        "colour": colours[0] if colours else None,  # the object's, not "turns X"
        "shape": next((w for w in words if w in SHAPES), None),
        "action": action,
        "direction": next((DIRECTIONS[w] for w in words if w in DIRECTIONS), None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("predictions", help="submission JSON")
    parser.add_argument("references", help="synthetic annotations (with durations)")
    args = parser.parse_args()
    refs = load_annotations(args.references)
    submitted = load_submission(args.predictions)
    preds = {r: submitted[p] for p, r in match_video_ids(submitted, refs).items()}
    best_tiou, starts, ends = [], [], []
    per_action: dict[str, list[float]] = {}  # best tIoU per reference
    action_errors: dict[str, list[tuple[float, float]]] = {}  # |start|, |end| (s)
    fields = ("size", "colour", "shape", "action", "direction")
    right = dict.fromkeys(fields, 0)
    asked = dict.fromkeys(fields, 0)
    all_right = n_matched = 0
    whose = {"its own": 0, "another of the video's": 0, "none of the video's": 0}
    other_kind = {"same colour": 0, "same shape": 0, "neither": 0}
    n_pred = 0
    for vid, ref in refs.items():
        pred = preds.get(vid)
        events = list(pred) if pred is not None else []
        n_pred += len(events)
        if not events:
            best_tiou += [0.0] * len(ref)
            for e in ref:
                per_action.setdefault(content(e.text)["action"] or "?", []).append(0.0)
            continue
        p = np.array([[e.start, e.end] for e in events], float)
        r = np.array([[e.start, e.end] for e in ref], float)
        iou = tiou_matrix(p, r)  # (P, R)
        bin_s = float(ref.duration) / (N_BINS - 1)
        words = [content(e.text) for e in ref]
        objects = {(w["colour"], w["shape"]) for w in words}
        for j, e in enumerate(ref):
            i = int(np.argmax(iou[:, j]))
            best_tiou.append(float(iou[i, j]))
            action = words[j]["action"] or "?"
            per_action.setdefault(action, []).append(float(iou[i, j]))
            if iou[i, j] >= 0.3:
                starts.append((events[i].start - e.start, bin_s))
                ends.append((events[i].end - e.end, bin_s))
                action_errors.setdefault(action, []).append(
                    (abs(events[i].start - e.start), abs(events[i].end - e.end))
                )
            if iou[i, j] >= 0.5:
                n_matched += 1
                want, got = words[j], content(events[i].text)
                named = (got["colour"], got["shape"])
                if named == (want["colour"], want["shape"]):
                    whose["its own"] += 1
                elif named in objects:
                    whose["another of the video's"] += 1
                    kind = (
                        "same colour"
                        if got["colour"] == want["colour"]
                        else "same shape"
                        if got["shape"] == want["shape"]
                        else "neither"
                    )
                    other_kind[kind] += 1
                else:
                    whose["none of the video's"] += 1
                ok = True
                for f in fields:
                    # "leaves to the left" has a direction that other wordings drop
                    if want[f] is None or (
                        f == "direction" and want["action"] != "move"
                    ):
                        continue
                    asked[f] += 1
                    right[f] += want[f] == got[f]
                    ok &= want[f] == got[f]
                all_right += ok
    best = np.array(best_tiou)
    n_ref = len(best)
    print(f"{len(refs)} videos: {n_ref} references, {n_pred} predictions")
    print("localisation: references with a prediction at tIoU >=")
    print("  " + "  ".join(f"{t}: {np.mean(best >= t):.3f}" for t in TIOUS))
    for name, errs in (("start", starts), ("end", ends)):
        if errs:
            d = np.array([x for x, _ in errs])
            b = np.array([x / s for x, s in errs])
            print(
                f"  {name} error at tIoU >= 0.3: median |d| {np.median(abs(d)):.2f} s"
                f" = {np.median(abs(b)):.1f} bins, mean d {d.mean():+.2f} s,"
                f" median d {np.median(d):+.2f} s"
            )
    print(
        "  per action of the reference: found at tIoU >= 0.5 and >= 0.9;"
        " median |error| of start and end (s) at tIoU >= 0.3"
    )
    for action, tious in sorted(
        per_action.items(), key=lambda x: -np.mean(np.array(x[1]) >= 0.5)
    ):
        t = np.array(tious)
        err = np.array(action_errors.get(action, [(np.nan, np.nan)]))
        print(
            f"    {action:14s} {np.mean(t >= 0.5):.3f} {np.mean(t >= 0.9):.3f}"
            f"  {np.median(err[:, 0]):.2f} {np.median(err[:, 1]):.2f}"
            f"  (of {len(t)})"
        )
    print(f"recognition, {n_matched} matches at tIoU >= 0.5:")
    for f in fields:
        if asked[f]:
            print(f"  {f:10s} right {right[f] / asked[f]:.3f}  (of {asked[f]})")
    if n_matched:
        print(f"  every content word right: {all_right / n_matched:.3f}")
        print(
            "  object named (colour + shape): "
            + ", ".join(f"{k} {v / n_matched:.3f}" for k, v in whose.items())
        )
        print(
            "  another of the video's, sharing with the reference: "
            + ", ".join(f"{k} {v / n_matched:.3f}" for k, v in other_kind.items())
        )


if __name__ == "__main__":
    main()

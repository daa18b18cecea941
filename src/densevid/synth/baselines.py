"""Trivial predictions that show how much headroom a benchmark leaves.

- ``ground_truth``: the references themselves (the ceiling of the metrics);
- ``usual_wording``: the reference events, each caption said the grammar's usual way:
  what a model that finds and describes every event exactly right could score;
- ``fixed``: one event over the whole video captioned with the most frequent
  training sentence;
- ``random``: as many events as a training video has on average, at random places with
  lengths drawn from the training events, captioned with frequent training sentences.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from densevid.events import Event, VideoEvents
from densevid.synth.language import usual_wording

N_FREQUENT = 10  # captions the random baseline draws from


def trivial_baselines(
    train: Sequence[VideoEvents], test: Sequence[VideoEvents], *, seed: int = 0
) -> dict[str, list[VideoEvents]]:
    """name -> predictions for every ``test`` video (which must have durations)."""
    rng = np.random.default_rng(seed)
    counts = Counter(e.text for v in train for e in v)
    frequent = [s for s, _ in counts.most_common(N_FREQUENT)] or ["Something happens."]
    fractions = [e.length / v.duration for v in train if v.duration for e in v] or [0.2]
    n_events = max(1, round(float(np.mean([len(v) for v in train]))) if train else 1)
    out: dict[str, list[VideoEvents]] = {
        "ground_truth": [],
        "usual_wording": [],
        "fixed": [],
        "random": [],
    }
    for v in test:
        d = float(v.duration or max((e.end for e in v), default=1.0))
        out["ground_truth"].append(VideoEvents(v.video_id, v.events))
        usual = tuple(Event(e.start, e.end, usual_wording(e.text)) for e in v)
        out["usual_wording"].append(VideoEvents(v.video_id, usual))
        out["fixed"].append(VideoEvents(v.video_id, (Event(0.0, d, frequent[0]),)))
        events = []
        for _ in range(n_events):
            length = d * float(rng.choice(fractions))
            start = float(rng.uniform(0.0, max(0.0, d - length)))
            text = frequent[int(rng.integers(len(frequent)))]
            events.append(
                Event(round(start, 2), round(min(d, start + length), 2), text)
            )
        events.sort(key=lambda e: (e.start, e.end))
        out["random"].append(VideoEvents(v.video_id, tuple(events)))
    return out

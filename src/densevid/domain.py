"""Is a new video like the videos the model was trained on?

A model answers in the words of its training world whatever it is shown: the bundled
model, trained on coloured shapes, describes a cartoon as shapes that move and change
colour, with the same confidence. Its scores do not reveal this, so the check looks at
the inputs instead. Training records compact statistics of its visual features in the
checkpoint (``ModelConfig.domain_stats``); captioning compares a new video's features
with them and warns (``OutOfDomainWarning``) when they lie far outside.

The rule, and why this one (measured in docs/results.md, "Videos unlike the training
videos"):

- Per feature dimension, the range of the training values between the
  ``TAIL``-quantile and the ``1 - TAIL``-quantile (a few hundred floats per stream).
- A video's distance is the fraction of its feature values (rows x dimensions)
  outside their dimension's range. A training video has about ``2 * TAIL`` of them;
  a video unlike the training ones has many more.
- The threshold is ``MARGIN`` times the ``QUANTILE`` of that fraction over the
  training videos (and at least ``MIN_THRESHOLD``), so about one training video in a
  hundred comes near it and none crosses it by much.

Mean squared z-scores (a diagonal Gaussian) were tried first and separate badly: the
synthetic features are heavy-tailed (most of a colour bin's values are 0, a few
large), so some training videos score higher than photographs do. Counting values
outside the training range asks the question directly: has the model seen such
values?

The statistics cover every block of the visual stream the extractor writes, not only
the blocks the model reads: a grey-scale film has all-zero ``pixels`` blobs, as an
empty synthetic scene has, but its thumbnails and edges are unlike any training
video's. The check costs two comparisons per feature value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

TAIL = 0.001  # the range of a dimension leaves this fraction of values out each side
QUANTILE = 0.99  # of the training videos' distances, times MARGIN: the threshold
MARGIN = 2.0
MIN_THRESHOLD = 0.01  # a small training set can put all its values inside the range
EPS = 1e-6  # values this close to the range count as inside (float round-off)
VALUE_BUDGET = 2**25  # feature values held at once to estimate the ranges (128 MB)
DIGITS = 6  # significant digits stored (a compact config.json)
RULE = (
    "fraction of feature values outside the training range of their dimension "
    f"(quantiles {TAIL:g} to {1 - TAIL:g}); threshold {MARGIN:g} x the "
    f"{QUANTILE:g} quantile of the training videos' fractions"
)
GUIDE = 'docs/training.md, "For real videos"'


class OutOfDomainWarning(UserWarning):
    """A video whose features lie far outside those the model was trained on: its
    captions describe the training world, not this video."""


@dataclass(frozen=True)
class DomainStats:
    """Statistics of a model's training features (``ModelConfig.domain_stats``).

    Attributes:
        features: the extractor whose rows they describe (the model's first visual
            stream).
        low, high: per dimension, the range of the training values.
        threshold: distances above this are out of domain.
        train_distances: percentiles (p50, p90, p99, max) of the training videos'
            distances, for messages and reports.
        n_videos: training videos the statistics come from.
    """

    features: str
    low: np.ndarray
    high: np.ndarray
    threshold: float
    train_distances: dict[str, float]
    n_videos: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with floats rounded to ``DIGITS`` significant digits."""
        return {
            "features": self.features,
            "rule": RULE,
            "threshold": _round(self.threshold),
            "train_distances": {k: _round(v) for k, v in self.train_distances.items()},
            "n_videos": self.n_videos,
            "low": [_round(x) for x in self.low.tolist()],
            "high": [_round(x) for x in self.high.tolist()],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DomainStats | None:
        """The statistics from a checkpoint's config, or None when it has none
        (saved before the check existed) or they are unreadable (then logged)."""
        if not d:
            return None
        try:
            low = np.asarray(d["low"], dtype=np.float64)
            high = np.asarray(d["high"], dtype=np.float64)
            threshold = float(d["threshold"])
        except (KeyError, TypeError, ValueError) as e:
            logger.warning("model config: unreadable domain_stats (%s); no check", e)
            return None
        if low.ndim != 1 or low.shape != high.shape:
            logger.warning("model config: domain_stats low/high differ; no check")
            return None
        return cls(
            str(d.get("features", "")),
            low,
            high,
            threshold,
            dict(d.get("train_distances", {})),
            int(d.get("n_videos", 0)),
        )


@dataclass(frozen=True)
class DomainCheck:
    """One video's distance beside the model's threshold."""

    distance: float
    threshold: float

    @property
    def out_of_domain(self) -> bool:
        return self.distance > self.threshold


def video_distance(array: np.ndarray, stats: DomainStats) -> float:
    """The fraction of a (T, D) feature array's values outside the training range
    of their dimension."""
    x = np.asarray(array)
    if x.size == 0:
        return 0.0
    outside = (x < stats.low - EPS) | (x > stats.high + EPS)
    return float(outside.mean())


def check_video(array: np.ndarray, stats: DomainStats) -> DomainCheck | None:
    """The video's distance against the threshold; None when the features do not
    have the statistics' dimension (another extractor or options: nothing to
    compare)."""
    x = np.asarray(array)
    if x.ndim != 2 or x.shape[1] != stats.low.shape[0]:
        logger.debug(
            "domain check skipped: features %s, statistics of %d dimensions",
            x.shape,
            stats.low.shape[0],
        )
        return None
    return DomainCheck(video_distance(x, stats), stats.threshold)


def fit_domain_stats(
    load: Callable[[int], np.ndarray], n_videos: int, features: str
) -> DomainStats:
    """Statistics of one extractor's training features (``features``): ``load(i)``
    is video i's (T, D) array.

    Two passes over the videos, so a corpus need not fit in memory: the ranges from
    evenly spaced rows of every video (at most ``VALUE_BUDGET`` values), then each
    video's distance, all rows.
    """
    if n_videos < 1:
        raise ValueError("no training videos to take domain statistics from")
    dim = np.asarray(load(0)).shape[1]
    per_video = max(1, VALUE_BUDGET // (n_videos * dim))
    rows = (np.asarray(load(i), np.float32) for i in range(n_videos))
    sample = np.concatenate([_spaced_rows(r, per_video) for r in rows])
    # rounded outward to the digits the config stores: the stored ranges are the
    # ones the training distances below were measured with
    low = _rounded(np.quantile(sample, TAIL, axis=0), "down")
    high = _rounded(np.quantile(sample, 1 - TAIL, axis=0), "up")
    provisional = DomainStats(features, low, high, 0.0, {}, n_videos)
    d = np.array([video_distance(load(i), provisional) for i in range(n_videos)])
    # rounded here as in the config, so a loaded checkpoint decides alike
    threshold = _round(max(MARGIN * float(np.quantile(d, QUANTILE)), MIN_THRESHOLD))
    p50, p90, p99 = np.quantile(d, [0.5, 0.9, 0.99]).tolist()
    spread = {"p50": p50, "p90": p90, "p99": p99, "max": float(d.max())}
    spread = {k: _round(v) for k, v in spread.items()}
    return DomainStats(features, low, high, threshold, spread, n_videos)


def domain_message(video: str) -> str:
    """The warning's line: what is wrong and how to get a model that fits. Worded
    alike for every video after its name, so a command can gather several."""
    return (
        f"{video}: the model was not trained on videos like this one, so its "
        "captions are likely wrong; for such videos, train a model on their "
        f"features ({GUIDE})"
    )


def _spaced_rows(array: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` rows, evenly spaced over the video."""
    if len(array) <= n:
        return array
    return array[np.linspace(0, len(array) - 1, n).round().astype(int)]


def _rounded(values: np.ndarray, direction: str) -> np.ndarray:
    return np.array([_round(v, direction) for v in values.tolist()], np.float64)


def _round(value: float, direction: str = "nearest") -> float:
    """``value`` to ``DIGITS`` significant digits, optionally rounded outward."""
    if value == 0 or not np.isfinite(value):
        return float(value)
    scale = 10.0 ** (DIGITS - 1 - int(np.floor(np.log10(abs(value)))))
    op = {"nearest": np.round, "down": np.floor, "up": np.ceil}[direction]
    return float(op(value * scale) / scale)

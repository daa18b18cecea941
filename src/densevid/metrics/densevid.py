"""The official ActivityNet dense-captioning protocol (ranjaykrishna/densevid_eval).

Reproduces ``evaluate.py`` @ 9d4045a (the 2019 "random garbage" version; the 2018
``abc123!@#`` one as an option):

- tIoU = intersection / union, union = hull for overlapping segments and the sum of
  lengths for disjoint ones, plus 1e-8; computed in the script's operation order, so
  values at a threshold's edge fall on the same side.
- Captions, per tIoU: every prediction pairs with every reference segment of every
  reference file with tIoU >= threshold; one that matches none pairs with a garbage
  sentence. Each metric is a corpus score over the video's pairs, averaged over all
  reference videos (no predictions: 0).
- Proposals, per tIoU: recall and precision with strict tIoU > threshold, per
  reference file, the best of each over the files taken independently per video.

This module builds the pairs and the proposal scores; scoring is in ``scorers.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from densevid.events import VideoEvents

TIOUS = (0.3, 0.5, 0.7, 0.9)
MAX_PROPOSALS = 1000
IOU_EPS = 1e-8  # added to the union by the official script
# The official script (since 2019-06-11) compares unmatched predictions with a fresh
# random string of 10-20 lowercase letters: always one token that nothing matches,
# so one fixed such token gives the same numbers, deterministically.
GARBAGE_RANDOM = "qzxvkjwqpfzhxkv"
GARBAGE_2018 = "abc123!@#"  # the string before 2019-06-11 (PDVC's "2018" numbers)
GARBAGE = {"random": GARBAGE_RANDOM, "2018": GARBAGE_2018}


def tiou_matrix(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """tIoU of every prediction with every reference segment, as densevid_eval's
    ``iou(pred, ref)`` evaluates it (same operations in the same order).

    Args:
        pred: (P, 2) start, end in seconds.
        ref: (G, 2) start, end in seconds.

    Returns:
        (P, G) tIoU.
    """
    ps, pe = pred[:, :1], pred[:, 1:]  # (P, 1)
    rs, re = ref[None, :, 0], ref[None, :, 1]  # (1, G)
    inter = np.maximum(0.0, np.minimum(re, pe) - np.maximum(rs, ps))
    union = np.minimum(np.maximum(re, pe) - np.minimum(rs, ps), re - rs + pe - ps)
    return inter / (union + IOU_EPS)


@dataclass(frozen=True)
class Reference:
    """One reference file's segments and tokenised sentences for one video."""

    spans: np.ndarray  # (G, 2)
    texts: tuple[str, ...]


@dataclass(frozen=True)
class Prediction:
    """A video's predictions (file order, truncated) with tokenised sentences."""

    spans: np.ndarray  # (P, 2)
    texts: tuple[str, ...]


def spans_of(video: VideoEvents) -> np.ndarray:
    """(N, 2) float64 start/end of a video's events."""
    return np.array([[e.start, e.end] for e in video.events], dtype=np.float64).reshape(
        -1, 2
    )


def caption_pairs(
    pred: Prediction, refs: Sequence[Reference], tious: Sequence[float], garbage: str
) -> list[list[tuple[str, str]]]:
    """The (hypothesis, reference) pairs of one video for each tIoU, in the
    official order (prediction, then reference file, then segment)."""
    ious = [tiou_matrix(pred.spans, r.spans) for r in refs]
    out = []
    for t in tious:
        hits = [np.nonzero(m >= t) for m in ious]
        per_pred: list[list[str]] = [[] for _ in pred.texts]
        for r, (rows, cols) in zip(refs, hits, strict=True):
            for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
                per_pred[i].append(r.texts[j])
        pairs = []
        for hyp, matched in zip(pred.texts, per_pred, strict=True):
            if matched:
                pairs.extend((hyp, ref) for ref in matched)
            else:
                pairs.append((hyp, garbage))
        out.append(pairs)
    return out


def proposal_scores(
    pred: Prediction, refs: Sequence[Reference], tious: Sequence[float]
) -> tuple[list[float], list[float]]:
    """(precision, recall) of one video's proposals for each tIoU: strict >, best
    value over the reference files, precision and recall chosen independently."""
    ious = [tiou_matrix(pred.spans, r.spans) for r in refs]
    precision, recall = [], []
    n_pred = len(pred.texts)
    for t in tious:
        best_p = best_r = 0.0
        for m in ious:
            hit = m > t
            n_ref = m.shape[1]
            if n_pred:
                best_p = max(best_p, float(hit.any(axis=1).sum()) / n_pred)
            if n_ref:
                best_r = max(best_r, float(hit.any(axis=0).sum()) / n_ref)
        precision.append(best_p)
        recall.append(best_r)
    return precision, recall


def f1_scores(
    precision: np.ndarray, recall: np.ndarray, how: str
) -> tuple[list[float], float]:
    """F1, which the official script does not compute, in the tools' three ways.

    Args:
        precision, recall: (V, T) per video and tIoU, over the averaged videos.
        how: "tiou" (VidChapters: F1 of the video-averaged P and R per tIoU, then
            their mean), "average" (F1 of the tIoU- and video-averaged P and R, as
            papers derive it from reported P and R) or "video" (scenic Vid2Seq:
            per video F1 of its tIoU-averaged P and R, averaged over videos).

    Returns:
        (F1 per tIoU, or [] for "video" and "average"; the reported F1).
    """
    if precision.size == 0:
        return [0.0] * precision.shape[1], 0.0
    if how == "tiou":
        p, r = precision.mean(axis=0), recall.mean(axis=0)
        per = [_f1(a, b) for a, b in zip(p.tolist(), r.tolist(), strict=True)]
        return per, float(np.mean(per))
    if how == "average":
        return [], _f1(float(precision.mean()), float(recall.mean()))
    if how == "video":
        p, r = precision.mean(axis=1), recall.mean(axis=1)
        per_video = [_f1(a, b) for a, b in zip(p.tolist(), r.tolist(), strict=True)]
        return [], float(np.mean(per_video))
    raise ValueError(f"unknown F1 definition {how!r}")


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def reference_ids(references: Sequence[Mapping[str, VideoEvents]]) -> list[str]:
    """The union of the reference files' video ids, in first-seen order."""
    return list(dict.fromkeys(v for ref in references for v in ref))

"""SODA_c (fujiso/SODA v1.1, Fujita et al. ECCV 2020) as the field reports it.

Per video, predictions and references are sorted by start time; the score of
reference i and prediction j is tIoU x METEOR, where METEOR is the sentence-level
score with the *reference sentence as hypothesis* and the prediction as reference
(SODA passes them to pycocoevalcap in that order). An order-preserving one-to-one
alignment maximising the summed score (dynamic programming) gives
P = score / #predictions, R = score / #references, F = 2PR / (P + R); SODA_c is F
averaged over the videos present in both predictions and references.

Several reference files: ``"separate"`` (PDVC's ``eval_soda``, the Vid2Seq PyTorch
code) runs each file alone and averages the results; ``"merged"`` (the SODA CLI's
default) merges the files' segments per video; ``"best"`` (SODA's
``--multi_reference``) takes per video the file with the best F.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from densevid.events import VideoEvents

SODA_REFERENCES = ("separate", "merged", "best")
IOU_EPS = 1e-8


@dataclass(frozen=True)
class SodaVideo:
    """One video's time-sorted predictions and one reference set, tokenised."""

    pred_spans: np.ndarray  # (P, 2)
    pred_texts: tuple[str, ...]
    ref_spans: np.ndarray  # (G, 2)
    ref_texts: tuple[str, ...]


def sort_by_start(video: VideoEvents) -> list:
    """Events ordered by start only, ties in file order (SODA's stable sort)."""
    return sorted(video.events, key=lambda e: e.start)


def iou_matrix(ref: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(G, P) tIoU in SODA's ``utils.iou(pred, ref)`` operation order."""
    ps, pe = pred[None, :, 0], pred[None, :, 1]  # (1, P)
    rs, re = ref[:, :1], ref[:, 1:]  # (G, 1)
    inter = np.maximum(0.0, np.minimum(pe, re) - np.maximum(ps, rs))
    union = np.minimum(np.maximum(pe, re) - np.minimum(ps, rs), pe - ps + re - rs)
    return inter / (union + IOU_EPS)


def scored_pairs(video: SodaVideo) -> list[tuple[str, str]]:
    """The (hypothesis, reference) METEOR pairs the score matrix needs: those with
    tIoU > 0 (elsewhere the product is 0), hypothesis = reference sentence."""
    iou = iou_matrix(video.ref_spans, video.pred_spans)
    rows, cols = np.nonzero(iou > 0)
    return [
        (video.ref_texts[i], video.pred_texts[j])
        for i, j in zip(rows.tolist(), cols.tolist(), strict=True)
    ]


def video_prf(
    video: SodaVideo, meteor: Callable[[str, str], float]
) -> tuple[float, float, float]:
    """(P, R, F) of one video; ``meteor(hyp, ref)`` is the sentence score."""
    n_ref, n_pred = len(video.ref_texts), len(video.pred_texts)
    if n_ref == 0 or n_pred == 0:
        return 0.0, 0.0, 0.0
    iou = iou_matrix(video.ref_spans, video.pred_spans)
    scores = np.zeros_like(iou)
    rows, cols = np.nonzero(iou > 0)
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        scores[i, j] = meteor(video.ref_texts[i], video.pred_texts[j])
    best = aligned_score(iou * scores)
    p, r = best / n_pred, best / n_ref
    return p, r, (2 * p * r / (p + r) if p + r > 0 else 0.0)


def aligned_score(s: np.ndarray) -> float:
    """Maximum summed score of a monotone one-to-one alignment of rows and columns:
    dp[i, j] = max(dp[i-1, j], dp[i, j-1], dp[i-1, j-1] + s[i, j]), iteratively
    (SODA's recursion overflows Python's stack on long videos)."""
    n_rows, n_cols = s.shape
    prev = [0.0] * (n_cols + 1)
    for i in range(n_rows):
        row = s[i].tolist()
        cur = [0.0] * (n_cols + 1)
        for j in range(n_cols):
            cur[j + 1] = max(prev[j + 1], cur[j], prev[j] + row[j])
        prev = cur
    return float(prev[-1])


def soda_videos(
    predictions: Mapping[str, VideoEvents],
    reference: Mapping[str, VideoEvents] | Sequence[Mapping[str, VideoEvents]],
    tokens: Mapping[str, str],
) -> dict[str, SodaVideo]:
    """The videos SODA evaluates against one reference set (several files are
    merged): ids in both, predictions and references sorted by start."""
    refs = [reference] if isinstance(reference, Mapping) else list(reference)
    out = {}
    for vid in dict.fromkeys(v for r in refs for v in r):
        if vid not in predictions:
            continue
        merged = [e for r in refs if vid in r for e in r[vid].events]
        ref_events = sorted(merged, key=lambda e: e.start)
        pred_events = sort_by_start(predictions[vid])
        out[vid] = SodaVideo(
            _spans(pred_events),
            tuple(tokens[e.text] for e in pred_events),
            _spans(ref_events),
            tuple(tokens[e.text] for e in ref_events),
        )
    return out


def _spans(events: Sequence) -> np.ndarray:
    return np.array([[e.start, e.end] for e in events], dtype=np.float64).reshape(-1, 2)

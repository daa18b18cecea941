"""Recall of search by text: did the ranked events of a query find its target?

Two questions per query, each answered at several depths k:

- video retrieval: is the target's video among the first k distinct videos of the
  ranking (a video ranks where its best event does);
- event retrieval: is one of the first k events in the target's video and overlapping
  the target by tIoU >= ``tiou`` (the official scorer's tIoU).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from densevid.errors import DensevidError
from densevid.metrics.densevid import tiou_matrix

KS = (1, 5, 10)
TIOU = 0.5

Span = tuple[str, float, float]  # video id, start, end in seconds


def retrieval_recall(
    rankings: Sequence[Sequence[Span]],
    targets: Sequence[Span],
    *,
    ks: Sequence[int] = KS,
    tiou: float = TIOU,
) -> dict[str, float]:
    """Video and event recall at each k over queries.

    Args:
        rankings: per query, the events found, best first.
        targets: per query, the event it describes.
        ks: depths.
        tiou: the overlap an event needs with the target to count as found.

    Returns:
        ``{"video_R@1": ..., "event_R@1": ..., ...}`` in [0, 1], and ``n_queries``.
    """
    if len(rankings) != len(targets):
        raise DensevidError(
            f"retrieval: {len(rankings)} rankings for {len(targets)} queries"
        )
    if not targets:
        raise DensevidError("retrieval: no queries")
    video_rank = np.full(len(targets), np.inf)
    event_rank = np.full(len(targets), np.inf)
    for q, (ranking, (vid, start, end)) in enumerate(
        zip(rankings, targets, strict=True)
    ):
        seen: list[str] = []
        for r, (v, s, e) in enumerate(ranking):
            if v not in seen:
                seen.append(v)
                if v == vid and video_rank[q] == np.inf:
                    video_rank[q] = len(seen) - 1
            if v == vid and event_rank[q] == np.inf:
                overlap = tiou_matrix(np.array([[s, e]]), np.array([[start, end]]))
                if overlap[0, 0] >= tiou:
                    event_rank[q] = r
    out: dict[str, float] = {}
    for k in ks:
        out[f"video_R@{k}"] = float(np.mean(video_rank < k))
    for k in ks:
        out[f"event_R@{k}"] = float(np.mean(event_rank < k))
    out["n_queries"] = float(len(targets))
    return out

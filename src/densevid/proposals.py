"""Event proposals: the first stage of a two-stage baseline in the style of BMT and
MDVC (seed 002), whose second stage captions each proposal with the same model
(``densevid.decoding.caption_segments``).

The proposal head reads the temporal encoder's frames. At every frame it has K
anchors, segments centred on the frame whose lengths are fixed fractions of the
video (``ModelConfig.proposal_anchors``: quantiles of the training events' relative
lengths), and predicts for each, YOLO-like as BMT's proposal module does, an
objectness logit, the event centre's offset from the frame's centre (in frames) and
the log of the event's length over the anchor's. A reference event is the target of
one anchor: the one at the frame holding its centre whose length is closest to the
event's (largest ratio of the shorter length to the longer). Other anchors
overlapping an event by tIoU above ``IGNORE_TIOU`` are left out of the objectness
loss, as YOLO ignores near misses, rather than taught to say "no event" where one
nearly is.

Decoding turns every (frame, anchor) into a scored segment, drops those below a
score, removes near duplicates by non-maximum suppression and keeps the best few.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from densevid.config import ProposalOptions
from densevid.decoding import (
    DecodingOptions,
    caption_segments,
    ordered_loader,
    refine_time,
)
from densevid.errors import DensevidError
from densevid.events import VideoEvents
from densevid.inputs import model_inputs, to_device

N_OUTPUTS = 3  # per anchor: objectness, centre offset (frames), log-length ratio
IGNORE_TIOU = 0.5  # an unassigned anchor this close to an event is no negative
MIN_LENGTH = 1e-3  # shortest event length (fraction of the video) a target takes


def anchor_lengths(lengths: Sequence[float], n: int) -> list[float]:
    """``n`` anchor lengths from events' relative lengths: their (i + 0.5) / n
    quantiles, so each anchor stands for an equal share of the events.

    Args:
        lengths: each event's length over its video's duration.
        n: the number of anchors.
    """
    if n < 1 or not lengths:
        raise DensevidError("anchor lengths need n >= 1 and at least one event")
    x = np.clip(np.asarray(lengths, dtype=np.float64), MIN_LENGTH, 1.0)
    q = (np.arange(n) + 0.5) / n
    return [round(float(v), 6) for v in np.quantile(x, q)]


def segment_tiou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Intersection over union of two segments (0 for disjoint ones)."""
    inter = min(a[1], b[1]) - max(a[0], b[0])
    if inter <= 0:
        return 0.0
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


def proposal_targets(
    spans: Sequence[tuple[float, float]], anchors: Sequence[float], n_frames: int
) -> dict[str, torch.Tensor]:
    """The proposal head's targets for one video.

    Frame j stands at relative time (j + 0.5) / F, as everywhere in densevid.

    Args:
        spans: (start, end) of each reference event, fractions of the video.
        anchors: the K anchor lengths, fractions of the video.
        n_frames: F.

    Returns:
        ``objectness`` [F, K] (1 for an assigned anchor), ``weight`` [F, K] (0 for
        ignored anchors, else 1), ``offset`` [F, K] (event centre minus frame centre,
        in frames, in [-0.5, 0.5)) and ``log_length`` [F, K] (log of the event's
        length over the anchor's); the last two only meaningful where objectness
        is 1.
    """
    k = len(anchors)
    obj = torch.zeros(n_frames, k)
    weight = torch.ones(n_frames, k)
    offset = torch.zeros(n_frames, k)
    log_length = torch.zeros(n_frames, k)
    best = torch.full((n_frames, k), -1.0)  # the assigned event's length ratio
    centres = (torch.arange(n_frames, dtype=torch.float64) + 0.5) / n_frames
    half = torch.tensor(anchors, dtype=torch.float64) / 2
    lo, hi = centres[:, None] - half, centres[:, None] + half  # (F, K) each anchor
    for s, e in spans:
        length = max(e - s, MIN_LENGTH)
        c = (s + e) / 2
        j = min(max(int(math.floor(c * n_frames)), 0), n_frames - 1)
        ratios = [min(length, a) / max(length, a) for a in anchors]
        a = max(range(k), key=lambda i: (ratios[i], -i))
        inter = torch.minimum(hi, torch.tensor(e)) - torch.maximum(lo, torch.tensor(s))
        union = torch.maximum(hi, torch.tensor(e)) - torch.minimum(lo, torch.tensor(s))
        tiou = inter.clamp(min=0) / union  # (F, K), as segment_tiou
        weight[tiou > IGNORE_TIOU] = 0.0  # near misses: neither positive nor negative
        if ratios[a] > best[j, a]:  # two events on one anchor: the closer fit
            best[j, a] = ratios[a]
            obj[j, a] = 1.0
            offset[j, a] = c * n_frames - (j + 0.5)
            log_length[j, a] = math.log(length / anchors[a])
    weight[obj > 0] = 1.0
    return {
        "objectness": obj,
        "weight": weight,
        "offset": offset,
        "log_length": log_length,
    }


def proposal_outputs(head: torch.nn.Module, visual: torch.Tensor) -> torch.Tensor:
    """[B, F, K, 3] raw outputs of the proposal head on encoded frames [B, F, d]."""
    out = head(visual)  # (B, F, 3K)
    return out.view(*out.shape[:-1], -1, N_OUTPUTS)


def proposal_loss(
    outputs: torch.Tensor,
    visual_mask: torch.Tensor,
    spans: Sequence[Sequence[tuple[float, float]]],
    anchors: Sequence[float],
) -> torch.Tensor:
    """Objectness binary cross-entropy (the mean over assigned anchors plus the mean
    over the other counted ones, so a few events are not outweighed by hundreds of
    empty anchors) and squared errors of the centre offset and log-length over the
    assigned anchors.

    Args:
        outputs: [B, F, K, 3] (``proposal_outputs``).
        visual_mask: [B, F] bool, True where a real frame.
        spans: per video, its events' (start, end) as fractions of the video.
        anchors: the K anchor lengths.
    """
    n_frames = outputs.shape[1]
    targets = [proposal_targets(s, anchors, n_frames) for s in spans]
    t = {k: torch.stack([x[k] for x in targets]).to(outputs.device) for k in targets[0]}
    out = outputs.float()
    real = visual_mask.bool().unsqueeze(-1).float()  # (B, F, 1)
    pos = t["objectness"] * real
    neg = (1 - t["objectness"]) * t["weight"] * real
    bce = F.binary_cross_entropy_with_logits(
        out[..., 0], t["objectness"], reduction="none"
    )
    loss = (bce * neg).sum() / neg.sum().clamp(min=1)
    n_pos = pos.sum()
    if n_pos > 0:
        offset = torch.sigmoid(out[..., 1]) - 0.5
        reg = (offset - t["offset"]) ** 2 + (out[..., 2] - t["log_length"]) ** 2
        loss = loss + ((bce + reg) * pos).sum() / n_pos
    return loss


def decode_outputs(
    outputs: torch.Tensor, anchors: Sequence[float], frame_mask: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Every (frame, anchor) of one video as a segment and its score.

    Args:
        outputs: [F, K, 3] raw outputs, or the members' mean for an ensemble
            (``average_outputs``).
        anchors: the K anchor lengths.
        frame_mask: [F] bool, True where a real frame.

    Returns:
        segments [N, 2] (start, end as fractions of the video, clipped to [0, 1])
        and scores [N] (objectness probabilities), N = real frames x K.
    """
    n_frames = outputs.shape[0]
    out = outputs.float()[frame_mask.bool()]  # (N_f, K, 3)
    frames = torch.arange(n_frames, device=outputs.device)[frame_mask.bool()]
    a = torch.tensor(anchors, device=outputs.device, dtype=torch.float32)
    centre = (frames[:, None] + 0.5 + torch.sigmoid(out[..., 1]) - 0.5) / n_frames
    length = a * torch.exp(out[..., 2].clamp(max=math.log(2 / min(anchors))))
    start = (centre - length / 2).clamp(0, 1)
    end = (centre + length / 2).clamp(0, 1)
    segments = torch.stack([start, end], -1).reshape(-1, 2)
    scores = torch.sigmoid(out[..., 0]).reshape(-1)
    return segments.cpu().numpy(), scores.cpu().numpy()


def nms(segments: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Greedy non-maximum suppression: indices of the kept segments, best first.

    The best-scored segment is kept, every segment overlapping it by tIoU above
    ``threshold`` is dropped, and so on; ties go to the earlier index.

    Args:
        segments: [N, 2] (start, end).
        scores: [N].
    """
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    kept: list[int] = []
    for i in order:
        seg = (float(segments[i][0]), float(segments[i][1]))
        if all(
            segment_tiou(seg, (float(segments[j][0]), float(segments[j][1])))
            <= threshold
            for j in kept
        ):
            kept.append(i)
    return kept


def select_proposals(
    segments: np.ndarray, scores: np.ndarray, options: ProposalOptions
) -> list[tuple[float, float, float]]:
    """(start, end, score) of the proposals ``options`` keep, in time order: scores
    of at least ``min_score`` (the best one always), then NMS, then the best
    ``max_proposals``. Segments without length are dropped first."""
    valid = np.flatnonzero(segments[:, 1] > segments[:, 0])
    if len(valid) == 0:
        return []
    segments, scores = segments[valid], scores[valid]
    keep = np.flatnonzero(scores >= options.min_score)
    if len(keep) == 0:
        keep = np.array([int(np.argmax(scores))])
    kept = nms(segments[keep], scores[keep], options.nms_threshold)
    chosen = keep[kept[: options.max_proposals]]
    out = [
        (float(segments[i][0]), float(segments[i][1]), float(scores[i])) for i in chosen
    ]
    return sorted(out)


def check_proposal_model(model: Any) -> list[float]:
    """The anchors a model's (every ensemble member's) proposal head uses; an error
    naming the fix when a member has none or they differ."""
    anchors = None
    for member in model.members:
        if getattr(member, "proposal_head", None) is None:
            raise DensevidError(
                "this model has no proposal head: train it with "
                "model.n_proposal_anchors (e.g. --set model.n_proposal_anchors=4)"
            )
        if anchors is not None and member.config.proposal_anchors != anchors:
            raise DensevidError(
                "ensemble members' proposal anchors differ: "
                f"{anchors} and {member.config.proposal_anchors}"
            )
        anchors = member.config.proposal_anchors
    assert anchors is not None
    return list(anchors)


@torch.no_grad()
def propose(
    model: Any,
    batch: Mapping[str, Any],
    options: ProposalOptions | None = None,
    *,
    refine_frames: int = 0,
) -> list[list[tuple[float, float, float]]]:
    """Proposals of every video of a collated batch.

    An ensemble's members' outputs are averaged (objectness as probabilities).
    With ``refine_frames`` and a model with a frame-event head, each kept
    proposal's boundaries then move to the head's peaks, as the joint model's
    events do (``densevid.decoding.refine_time``).

    Returns:
        per video, (start s, end s, score) in time order.
    """
    options = (options or ProposalOptions()).verify()
    anchors = check_proposal_model(model)
    inputs = model_inputs(batch)
    mask = inputs["visual_mask"]
    n_frames = inputs["visual"].shape[1]
    outs, heads = [], []
    for member in model.members:
        hidden, _ = member.encode(**inputs)
        outs.append(proposal_outputs(member.proposal_head, hidden[:, :n_frames]))
        if refine_frames > 0 and getattr(member, "frame_head", None) is not None:
            heads.append(torch.sigmoid(member.frame_head(hidden[:, :n_frames])))
    out = average_outputs(outs)
    frame_probs = torch.stack(heads).float().mean(0).cpu().numpy() if heads else None
    results = []
    for i, duration in enumerate(batch["durations"].tolist()):
        segments, scores = decode_outputs(out[i], anchors, mask[i])
        found = []
        for s, e, p in select_proposals(segments, scores, options):
            s, e = s * duration, e * duration
            if frame_probs is not None:
                a = refine_time(s, frame_probs[i, :, 1], duration, refine_frames)
                b = refine_time(e, frame_probs[i, :, 2], duration, refine_frames)
                s, e = (a, b) if a < b else (s, e)
            found.append((s, e, p))
        results.append(sorted(found))
    return results


def average_outputs(outputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Members' [B, F, K, 3] outputs as one: the mean objectness probability (back
    as a logit) and the mean of the regression outputs."""
    if len(outputs) == 1:
        return outputs[0].float()
    x = torch.stack([o.float() for o in outputs])  # (M, B, F, K, 3)
    mean = x.mean(0)
    p = torch.sigmoid(x[..., 0]).mean(0).clamp(1e-6, 1 - 1e-6)
    mean[..., 0] = torch.logit(p)
    return mean


@torch.no_grad()
def caption_proposals(
    model: Any,
    batch: Mapping[str, Any],
    options: ProposalOptions | None = None,
    decoding: DecodingOptions | None = None,
) -> list[VideoEvents]:
    """The two-stage baseline on a collated batch: the proposal head's segments
    (``propose``, boundaries refined as ``decoding.refine_frames`` says), each then
    captioned by ``caption_segments``."""
    decoding = decoding or DecodingOptions()
    found = propose(model, batch, options, refine_frames=decoding.refine_frames)
    segments = [[(s, e) for s, e, _ in video] for video in found]
    return caption_segments(model, batch, segments, decoding)


@torch.no_grad()
def propose_dataset(
    model: Any,
    dataset: torch.utils.data.Dataset,
    options: ProposalOptions | None = None,
    *,
    batch_size: int = 8,
    refine_frames: int = 0,
) -> dict[str, list[tuple[float, float, float]]]:
    """Video id -> proposals (start s, end s, score) for every video of a dataset
    (``propose``), ready for ``decode_dataset(..., segments=...)`` once the scores
    are dropped."""
    loader = ordered_loader(model, dataset, batch_size)
    was_training = model.training
    model.eval()
    out: dict[str, list[tuple[float, float, float]]] = {}
    try:
        for batch in loader:
            batch = to_device(batch, model.device)
            for video_id, found in zip(
                batch["video_ids"],
                propose(model, batch, options, refine_frames=refine_frames),
                strict=True,
            ):
                out[video_id] = found
    finally:
        model.train(was_training)
    return out

"""The training losses: token cross-entropy (optionally with soft time targets) and
the frame-event head's binary cross-entropy.

Every objective, fine-tuning or pretraining, computes its loss on a batch here, so a
change to the loss reaches all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from densevid.concepts import concept_loss
from densevid.events import Event
from densevid.inputs import IGNORE_INDEX, model_inputs
from densevid.model import unwrap
from densevid.proposals import proposal_loss, proposal_outputs


def compute_loss(
    model: torch.nn.Module,
    batch: Mapping[str, Any],
    label_smoothing: float,
    event_loss_weight: float = 0.0,
    time_sigma: float = 0.0,
    concept_loss_weight: float = 0.0,
    proposal_loss_weight: float = 0.0,
) -> tuple[torch.Tensor, int]:
    """Token-mean cross-entropy (with label smoothing; time tokens' targets spread
    over neighbouring bins with ``time_sigma``) and the token count, plus
    ``event_loss_weight`` x the frame-event loss when the batch has its targets, plus
    ``concept_loss_weight`` x the concept loss of a model with a concept head, plus
    ``proposal_loss_weight`` x the proposal loss of a model with a proposal head."""
    labels = batch["labels"]
    targets = batch.get("frame_targets") if event_loss_weight > 0 else None
    net = unwrap(model)
    with_concepts = concept_loss_weight > 0 and net.concept_head is not None
    with_proposals = proposal_loss_weight > 0 and net.proposal_head is not None
    with_visual = with_concepts or with_proposals
    out = model(
        labels,
        with_frames=targets is not None,
        with_visual=with_visual,
        **model_inputs(batch),
    )
    rest = list(out[1:]) if isinstance(out, tuple) else []
    logits = out[0] if isinstance(out, tuple) else out  # (B, T, V)
    frames = rest.pop(0) if targets is not None else None
    visual = rest.pop(0) if with_visual else None
    if time_sigma > 0:
        config = unwrap(model).config
        loss = soft_time_cross_entropy(
            logits,
            labels,
            config.time_offset,
            config.n_time_tokens,
            time_sigma,
            label_smoothing,
        )
    else:
        loss = F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]),
            labels.reshape(-1),
            ignore_index=IGNORE_INDEX,
            label_smoothing=label_smoothing,
        )
    if frames is not None:
        mask = batch["visual_mask"].unsqueeze(-1).float()
        bce = F.binary_cross_entropy_with_logits(
            frames.float(), targets, reduction="none"
        )
        loss = loss + event_loss_weight * (bce * mask).sum() / (3 * mask.sum())
    if visual is not None and with_concepts:
        loss = loss + concept_loss_weight * _concept_loss(net, batch, visual)
    if visual is not None and with_proposals:
        loss = loss + proposal_loss_weight * _proposal_loss(net, batch, visual)
    return loss, int((labels != IGNORE_INDEX).sum())


def label_events(net: Any, batch: Mapping[str, Any]) -> list[list[Event]]:
    """Each item's target events read back from its labels: the references as the
    item shows them (a crop, a mirror, two videos joined)."""
    tt = net.time_tokenizer
    durations = batch["durations"].tolist()
    return [
        tt.decode_events(row[row != IGNORE_INDEX].tolist(), durations[i])
        for i, row in enumerate(batch["labels"])
    ]


def _concept_loss(net: Any, batch: Mapping[str, Any], visual: torch.Tensor):
    """The concept loss, its targets from the item's events (``label_events``)."""
    events = [[(e.start, e.end, e.text) for e in v] for v in label_events(net, batch)]
    return concept_loss(
        net.concept_head,
        visual,
        batch["visual_mask"],
        events,
        batch["durations"].tolist(),
        net.config.concepts,
    )


def _proposal_loss(net: Any, batch: Mapping[str, Any], visual: torch.Tensor):
    """The proposal loss, its targets from the item's events (``label_events``), as
    fractions of the item's duration."""
    durations = batch["durations"].tolist()
    spans = [
        [(e.start / d, e.end / d) for e in v]
        for v, d in zip(label_events(net, batch), durations, strict=True)
    ]
    outputs = proposal_outputs(net.proposal_head, visual)
    return proposal_loss(
        outputs, batch["visual_mask"], spans, net.config.proposal_anchors
    )


def soft_time_cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    time_offset: int,
    n_time_tokens: int,
    sigma: float,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """``F.cross_entropy`` with label smoothing, except that a time token's target is
    a Gaussian over the time bins (``sigma`` bins wide) centred on its bin: the
    model learns that neighbouring bins are nearly right. -100 labels ignored."""
    logp = torch.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    valid = labels != IGNORE_INDEX
    ids = labels.clamp(min=0)
    nll = -logp.gather(-1, ids.unsqueeze(-1)).squeeze(-1)  # (B, T)
    is_time = valid & (ids >= time_offset) & (ids < time_offset + n_time_tokens)
    if is_time.any():
        bins = torch.arange(n_time_tokens, device=logits.device, dtype=torch.float32)
        centre = (ids[is_time] - time_offset).float()
        q = torch.exp(-0.5 * ((bins[None] - centre[:, None]) / sigma) ** 2)
        q = q / q.sum(-1, keepdim=True)
        time_logp = logp[is_time][:, time_offset : time_offset + n_time_tokens]
        nll = nll.masked_scatter(is_time, -(q * time_logp).sum(-1))
    smooth = -logp.mean(-1)
    loss = (1 - label_smoothing) * nll + label_smoothing * smooth
    return (loss * valid).sum() / valid.sum().clamp(min=1)

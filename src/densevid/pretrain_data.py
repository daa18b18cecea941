"""The data side of pretraining: transcripts -> pseudo events -> training items.

A video's speech segments become pseudo events (``transcript_events``), time-tokenised
as the generative target; the same ids, T5 span-corrupted (``span_corrupt``: a share
``noise_density`` of the tokens in spans of mean length ``mean_span``, each replaced
by a sentinel ``<extra_id_k>``), are the denoising input, and the masked spans after
their sentinels its target. ``PretrainTransform`` builds both for one video and
``collate_pretrain`` batches them; ``densevid.pretrain`` runs the training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from densevid.config import ModelConfig
from densevid.data import frame_event_targets
from densevid.errors import DensevidError
from densevid.inputs import collate, sample_frames

NOISE_DENSITY = 0.25  # fraction of transcript tokens masked (the figure)
MEAN_SPAN = 5.0  # tokens per masked span (T5's default is 3; Vid2Seq uses 5)


# --- span corruption ---------------------------------------------------------------


def ensure_sentinels(tokenizer: Any, n: int | None = None) -> list[int]:
    """Ids of ``<extra_id_0>``... (in that order), adding them when missing.

    densevid's and T5's tokenizers have them; a tokenizer without them gets ``n``
    appended as special tokens, which only grows the vocabulary (time tokens are
    found by name), so the saved tokenizer and checkpoint stay consistent.
    """
    from densevid.text import N_SENTINELS, SENTINEL

    vocab = tokenizer.get_vocab()
    if SENTINEL.format(0) not in vocab:
        tokenizer.add_tokens(
            [SENTINEL.format(i) for i in range(n or N_SENTINELS)], special_tokens=True
        )
        vocab = tokenizer.get_vocab()
    ids = []
    while SENTINEL.format(len(ids)) in vocab and (n is None or len(ids) < n):
        ids.append(vocab[SENTINEL.format(len(ids))])
    return ids


def _composition(total: int, parts: int, rng: np.random.Generator) -> np.ndarray:
    """``total`` split into ``parts`` positive integers, uniformly over all splits."""
    cuts = np.sort(rng.choice(np.arange(1, total), size=parts - 1, replace=False))
    return np.diff(np.concatenate([[0], cuts, [total]]))


def random_span_mask(
    length: int,
    rng: np.random.Generator,
    *,
    noise_density: float = NOISE_DENSITY,
    mean_span: float = MEAN_SPAN,
    max_spans: int | None = None,
) -> np.ndarray:
    """Which of ``length`` tokens to mask: [length] bool, T5's span statistics.

    ``round(length x noise_density)`` tokens in ``round(noise / mean_span)`` spans
    (at most ``max_spans``, the sentinels available), span lengths a uniform random
    composition of the noise, as in T5's ``random_spans_noise_mask``. Unlike T5's
    layout, which always starts with a kept token and ends with a masked one, the
    gaps before the first and after the last span may be empty, so every position
    (the last event's caption included) is masked equally often.
    """
    if length < 2:
        return np.zeros(length, dtype=bool)
    n_noise = min(max(int(round(length * noise_density)), 1), length - 1)
    n_keep = length - n_noise
    n_spans = max(int(round(n_noise / mean_span)), 1)
    if max_spans is not None:
        n_spans = min(n_spans, max_spans)
    n_spans = min(n_spans, n_noise, n_keep + 1)
    spans = _composition(n_noise, n_spans, rng)
    # n_spans + 1 gaps, inner ones >= 1, outer ones >= 0
    gaps = _composition(n_keep + 2, n_spans + 1, rng)
    gaps[0] -= 1
    gaps[-1] -= 1
    mask = np.zeros(length, dtype=bool)
    pos = 0
    for g, s in zip(gaps[:-1], spans, strict=True):
        pos += g
        mask[pos : pos + s] = True
        pos += s
    return mask


def span_corrupt(
    ids: Sequence[int],
    sentinels: Sequence[int],
    rng: np.random.Generator,
    *,
    noise_density: float = NOISE_DENSITY,
    mean_span: float = MEAN_SPAN,
) -> tuple[list[int], list[int]]:
    """T5 span corruption of one sequence (without its ``</s>``).

    Returns:
        (inputs, targets): the inputs keep unmasked tokens and replace span k by
        ``sentinels[k]``; the targets are ``sentinels[k]`` followed by span k's
        tokens, for every span in order. ``restore_spans`` inverts it.
    """
    mask = random_span_mask(
        len(ids),
        rng,
        noise_density=noise_density,
        mean_span=mean_span,
        max_spans=len(sentinels),
    )
    inputs: list[int] = []
    targets: list[int] = []
    k = -1
    for i, token in enumerate(ids):
        if mask[i]:
            if i == 0 or not mask[i - 1]:
                k += 1
                inputs.append(sentinels[k])
                targets.append(sentinels[k])
            targets.append(int(token))
        else:
            inputs.append(int(token))
    return inputs, targets


def restore_spans(
    inputs: Sequence[int], targets: Sequence[int], sentinels: Sequence[int]
) -> list[int]:
    """The original ids from ``span_corrupt``'s (inputs, targets)."""
    index = {s: k for k, s in enumerate(sentinels)}
    spans: dict[int, list[int]] = {}
    current: list[int] | None = None
    for token in targets:
        if token in index:
            current = spans.setdefault(index[token], [])
        elif current is not None:
            current.append(token)
    out: list[int] = []
    for token in inputs:
        out += spans.get(index[token], []) if token in index else [token]
    return out


# --- transcripts -> training items -------------------------------------------------


def transcript_events(
    segments: Sequence[Mapping[str, Any]], duration: float
) -> list[dict[str, Any]]:
    """Speech segments -> pseudo events: text stripped, times clipped to the video,
    segments with no words or no length left out."""
    events = []
    for s in segments:
        text = " ".join(str(s["text"]).split())
        start = min(max(float(s["start"]), 0.0), duration)
        end = min(max(float(s["end"]), 0.0), duration)
        if text and end > start:
            events.append({"start": start, "end": end, "text": text})
    events.sort(key=lambda e: (e["start"], e["end"]))
    return events


class PretrainTransform:
    """NarratedVideo -> one item with both objectives' inputs and targets.

    Picklable, so dataloader workers can run it. Returns None (sample dropped) when
    the transcript yields no pseudo event.
    """

    def __init__(
        self,
        config: ModelConfig,
        time_tokenizer: Any,
        sentinels: Sequence[int],
        *,
        denoise: bool,
        noise_density: float = NOISE_DENSITY,
        mean_span: float = MEAN_SPAN,
    ) -> None:
        self.config, self.tt, self.sentinels = config, time_tokenizer, list(sentinels)
        self.denoise = denoise
        self.noise_density, self.mean_span = noise_density, mean_span

    def __call__(self, video: Any, rng: np.random.Generator) -> dict[str, Any] | None:
        cfg = self.config
        events = transcript_events(video.speech, video.duration)
        if not events:
            return None
        item: dict[str, Any] = {
            "video_id": video.key,
            "duration": video.duration,
            "visual": sample_frames(
                video.visual,
                video.visual_times,
                0.0,
                video.duration,
                cfg.n_frames,
                cfg.interpolate_frames,
            ),  # fmt: skip
            "labels": self.tt.encode_events(
                events, video.duration, max_length=cfg.max_target_tokens
            ),
        }
        if cfg.frame_events:
            item["frame_targets"] = frame_event_targets(
                [(e["start"], e["end"]) for e in events], 0.0, video.duration,
                cfg.n_frames,
            )  # fmt: skip
        if cfg.use_audio:
            if video.audio is None:
                raise DensevidError(f"{video.key}: the model needs audio features")
            item["audio"] = sample_frames(
                video.audio, video.audio_times, 0.0, video.duration,
                cfg.n_audio_frames, cfg.interpolate_frames,
            )  # fmt: skip
        if self.denoise:
            ids = self.tt.encode_events(
                events, video.duration, max_length=cfg.max_speech_tokens
            )[:-1]
            inputs, targets = span_corrupt(
                ids,
                self.sentinels,
                rng,
                noise_density=self.noise_density,
                mean_span=self.mean_span,
            )
            item["speech_ids"] = inputs + [self.tt.eos_id]
            item["denoise_labels"] = targets[: cfg.max_target_tokens - 1] + [
                self.tt.eos_id
            ]
        return item


def collate_pretrain(
    items: Sequence[dict[str, Any]], pad_id: int = 0
) -> dict[str, dict[str, Any]]:
    """Items -> {"generative": batch, "denoising": batch (when present)}.

    The generative batch carries an empty, fully masked speech stream when the model
    has one, so the decoder sees frames only.
    """
    plain = [
        {k: v for k, v in it.items() if k not in ("speech_ids", "denoise_labels")}
        for it in items
    ]
    out = {"generative": collate(plain, pad_id)}
    if "speech_ids" in items[0]:
        gen = out["generative"]
        gen["speech_ids"] = torch.full((len(items), 1), pad_id, dtype=torch.long)
        gen["speech_mask"] = torch.zeros((len(items), 1), dtype=torch.long)
        den = [  # the frame-event loss goes with the generative objective only
            {k: v for k, v in p.items() if k != "frame_targets"}
            | {"speech_ids": it["speech_ids"], "labels": it["denoise_labels"]}
            for p, it in zip(plain, items, strict=True)
        ]
        out["denoising"] = collate(den, pad_id)
    return out


class Collator:
    """``collate_pretrain`` with the pad id bound (picklable for workers)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return collate_pretrain(items, self.pad_id)

"""Several checkpoints decoding as one model.

Models trained from different seeds make partly different mistakes: one misplaces a
boundary, another names the wrong object. An ``Ensemble`` averages their next-token
probabilities at every step (a mixture: log of the mean probability, so its
likelihood is a proper one) and their frame-event probabilities, and searches with
the average (``densevid.decoding``). The models must read the same frames and share
one tokenizer: the same recipe with other seeds, or other sizes on the same features.

Members may differ in the audio and speech streams they read beside the frames (late
fusion, as MDVC's modality-specific models combined at the output): the ensemble
then reads every stream some member reads, and each member takes only its own.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn

from densevid.caption import CaptionOptions
from densevid.caption import caption as caption_video
from densevid.config import ModelConfig
from densevid.decoding import mix
from densevid.errors import DensevidError
from densevid.events import VideoEvents
from densevid.model import DenseVideoModel, token_log_likelihood
from densevid.text import TimeTokenizer

# What every member must agree on: the frames it reads and the ids it writes.
SHARED_FIELDS = (
    "vocab_size",
    "n_time_tokens",
    "time_offset",
    "n_frames",
    "interpolate_frames",
    "visual_features",
    "visual_blocks",
    "visual_dim",
    "max_target_tokens",
    "max_duration",
)
# The optional streams: what the members that read one must agree on (a member
# without it ignores it). The ensemble's config reads every stream some member reads.
STREAM_FIELDS = {
    "audio": ("audio_features", "audio_dim", "n_audio_frames"),
    "speech": ("speech_features", "max_speech_tokens"),
}


def joint_config(configs: Sequence[ModelConfig], names: Sequence[str]) -> ModelConfig:
    """The first member's config reading every stream some member reads.

    Raises:
        DensevidError: two members read a stream differently, or extracted a
            stream's features with other options.
    """
    joint = ModelConfig.from_dict(configs[0].to_dict())
    readers = dict.fromkeys(STREAM_FIELDS, "")  # who set each stream's fields
    for name, config in zip(names, configs, strict=True):
        for stream, keys in STREAM_FIELDS.items():
            if not getattr(config, f"use_{stream}"):
                continue
            if not readers[stream]:
                readers[stream] = name
                for key in keys:
                    setattr(joint, key, getattr(config, key))
            for key in keys:
                a, b = getattr(joint, key), getattr(config, key)
                if a != b:
                    raise DensevidError(
                        f"{name}: cannot join an ensemble with {readers[stream]}: "
                        f"its {key} is {b!r}, not {a!r} (members that read the "
                        f"{stream} stream must read the same)"
                    )
        for extractor, options in config.extractor_options.items():
            known = joint.extractor_options.setdefault(extractor, options)
            if known != options:
                raise DensevidError(
                    f"{name}: cannot join an ensemble with {names[0]}: its "
                    f"{extractor} features were extracted with {options!r}, not "
                    f"{known!r} (members must read the same features)"
                )
    return joint


class Ensemble(nn.Module):
    """Models whose averaged predictions decode as one (``decode`` takes it where it
    takes a model). ``tokenizer`` is the first member's, and ``config`` too, reading
    every stream some member reads (``joint_config``)."""

    def __init__(self, models: Sequence[DenseVideoModel], names: Sequence[str] = ()):
        super().__init__()
        if len(models) < 2:
            raise DensevidError("an ensemble needs at least two models")
        names = list(names) or [f"model {i + 1}" for i in range(len(models))]
        first = models[0]
        for name, m in zip(names[1:], models[1:], strict=True):
            for key in SHARED_FIELDS:
                a, b = getattr(first.config, key), getattr(m.config, key)
                if a != b:
                    raise DensevidError(
                        f"{name}: cannot join an ensemble with {names[0]}: its "
                        f"{key} is {b!r}, not {a!r} (members must read the same "
                        "frames and share one tokenizer)"
                    )
            if m.tokenizer.get_vocab() != first.tokenizer.get_vocab():
                raise DensevidError(
                    f"{name}: cannot join an ensemble with {names[0]}: another "
                    "tokenizer (train the members on the same captions)"
                )
        self.members = nn.ModuleList(models)
        self.config = joint_config([m.config for m in models], names)
        self.tokenizer = first.tokenizer

    @property
    def device(self) -> torch.device:
        return self.members[0].device

    @property
    def time_tokenizer(self) -> TimeTokenizer:
        return self.members[0].time_tokenizer

    def caption(
        self, video: str | os.PathLike, options: CaptionOptions | None = None
    ) -> VideoEvents:
        """Events of one video file; see ``densevid.caption.caption``."""
        return caption_video(self, video, options)

    def forward(self, labels: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        """Teacher-forced log-probabilities [B, T, V] of the mixture (usable as
        logits: they are already normalised)."""
        logps = [
            torch.log_softmax(m(labels, **inputs).float(), dim=-1) for m in self.members
        ]
        return mix(logps)

    @torch.no_grad()
    def log_likelihood(
        self, labels: torch.Tensor, **inputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """As ``DenseVideoModel.log_likelihood``, under the mixture."""
        return token_log_likelihood(self.forward(labels, **inputs), labels)

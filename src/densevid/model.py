"""The joint model: a temporal encoder over frame features feeding a T5-family LM.

Vid2Seq-style (docs/design.md, "The joint model"): F frame features -> linear projection
-> temporal transformer with learned positions. Optional streams: audio features through
their own projection (and positions), and the speech transcript as time-tokenised text
encoded by the LM's own encoder. The encoded streams are concatenated along time and the
LM decoder cross-attends to all of them, writing ``<t_s> <t_e> caption ... </s>``.

The LM is wrapped by composition (``self.lm`` is a ``T5ForConditionalGeneration``); its
encoder is used only for the speech stream.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from densevid.caption import CaptionOptions
from densevid.caption import caption as caption_video
from densevid.config import ModelConfig
from densevid.errors import DensevidError
from densevid.events import VideoEvents
from densevid.inputs import IGNORE_INDEX
from densevid.text import TimeTokenizer, add_time_tokens
from densevid.visual_encoder import FrameEncoder, build_frame_encoder

logger = logging.getLogger(__name__)

__all__ = ["IGNORE_INDEX", "DenseVideoModel", "ModelConfig", "build_model"]


class TemporalEncoder(nn.Module):
    """Projects one feature stream and contextualises it over time.

    ``[B, T, D_in] -> [B, T, d_model]`` with learned positions; padded steps are masked.
    """

    def __init__(
        self,
        d_in: int,
        d_model: int,
        n_steps: int,
        n_layers: int,
        n_heads: int,
        dropout: float,
        input_norm: bool = True,
        standardize: bool = False,
        conv_kernel: int = 0,
        stream_dims: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.standardize = standardize
        if standardize:  # set from the training features by set_input_stats
            self.register_buffer("in_mean", torch.zeros(d_in))
            self.register_buffer("in_std", torch.ones(d_in))
        # features mix blocks of different scales (pixels: colours, edges, motion;
        # CLIP: large norms): normalising each frame first makes one lr fit all
        # (several streams with visual_fusion "sum": each stream normalised alone)
        self.in_norm: nn.Module = nn.Identity()
        if input_norm:
            self.in_norm = (
                StreamNorm(stream_dims) if stream_dims else nn.LayerNorm(d_in)
            )
        self.proj = nn.Linear(d_in, d_model)
        self.conv: nn.Module | None = None
        if conv_kernel:
            pad = conv_kernel // 2
            self.conv = nn.Sequential(
                nn.Conv1d(d_model, d_model, conv_kernel, padding=pad),
                nn.GELU(),
                nn.Conv1d(d_model, d_model, conv_kernel, padding=pad),
            )
        self.pos = nn.Parameter(torch.zeros(n_steps, d_model))
        nn.init.normal_(self.pos, std=0.02)
        self.drop = nn.Dropout(dropout)
        if n_layers > 0:
            layer = nn.TransformerEncoderLayer(
                d_model,
                n_heads,
                4 * d_model,
                dropout,
                batch_first=True,
                norm_first=True,
                activation="gelu",
            )
            self.layers: nn.Module | None = nn.TransformerEncoder(
                layer, n_layers, enable_nested_tensor=False
            )
        else:
            self.layers = None
        self.norm = nn.LayerNorm(d_model)

    @torch.no_grad()
    def set_input_stats(self, mean: Any, std: Any) -> None:
        """The per-dimension mean and std of the training features (standardize)."""
        if not self.standardize:
            raise DensevidError("this encoder does not standardise its inputs")
        self.in_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.in_std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: [B, T, D_in]; mask: [B, T] bool, True where a real step."""
        if self.standardize:
            x = (x - self.in_mean) / self.in_std
        h = self.proj(self.in_norm(x))  # (B, T, d)
        if self.conv is not None:  # padded steps read as zeros by their neighbours
            h = h * mask.unsqueeze(-1)
            h = h + self.conv(h.transpose(1, 2)).transpose(1, 2)
        h = h + self.pos[: x.shape[1]]
        h = self.drop(h)
        if self.layers is not None:
            h = self.layers(h, src_key_padding_mask=~mask)
        return self.norm(h) * mask.unsqueeze(-1)


class StreamNorm(nn.Module):
    """A LayerNorm per stream of a row that concatenates several streams, so that a
    linear projection of the result is the sum of each stream's own projection of
    its normalised features (``ModelConfig.visual_fusion = "sum"``)."""

    def __init__(self, dims: Sequence[int]) -> None:
        super().__init__()
        self.dims = list(dims)
        self.norms = nn.ModuleList(nn.LayerNorm(d) for d in self.dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.dims, dim=-1)  # each (B, T, D_i)
        return torch.cat([n(p) for n, p in zip(self.norms, parts, strict=True)], -1)


class TimePointerHead(nn.Module):
    """The LM head plus a pointer from the decoder to the frames for time tokens.

    A plain time-token vocabulary must learn, from data alone, which of N output rows
    goes with which frame position. Here the logit of ``<time_k>`` also gets
    ``q(h) . k(v_j) / sqrt(d)``, where v_j is the encoded frame at relative time bin k:
    saying "when" becomes pointing at the frame the decoder attends to. Frames are
    sampled uniformly (``densevid.data.sample_frames``), so frame j stands at relative
    time (j + 0.5) / F. ``memory`` (the visual stream's states, [B, F, d]) is set by
    ``DenseVideoModel.encode`` before every decoder pass; beams repeat each video.
    """

    def __init__(self, base: nn.Linear, n_time_tokens: int, time_offset: int) -> None:
        super().__init__()
        self.base = base
        d = base.in_features
        self.query = nn.Linear(d, d, bias=False)
        self.key = nn.Linear(d, d, bias=False)
        self.n_time_tokens = n_time_tokens
        self.time_offset = time_offset
        self.memory: torch.Tensor | None = None

    @property
    def weight(self) -> torch.Tensor:  # what transformers reads of an output layer
        return self.base.weight

    def frame_of_bin(self, n_frames: int, device: torch.device) -> torch.Tensor:
        """For each time bin, the frame whose slice [j, j + 1) / F holds its middle."""
        k = torch.arange(self.n_time_tokens, device=device, dtype=torch.float32)
        centre = (k + 0.5) / (self.n_time_tokens - 1)  # bin k = [k, k+1) / (N-1)
        j = torch.floor(centre * n_frames).long()
        return j.clamp(0, n_frames - 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        logits = self.base(h)
        if self.memory is None:
            return logits
        mem = self.memory
        if mem.shape[0] != h.shape[0]:  # beam search: each video repeated per beam
            mem = mem.repeat_interleave(h.shape[0] // mem.shape[0], dim=0)
        keys = self.key(mem[:, self.frame_of_bin(mem.shape[1], mem.device)])
        scores = self.query(h) @ keys.transpose(1, 2) / math.sqrt(h.shape[-1])
        t0 = self.time_offset
        pad = (t0, logits.shape[-1] - t0 - self.n_time_tokens)
        return logits + nn.functional.pad(scores.to(logits.dtype), pad)


class DenseVideoModel(nn.Module):
    """Frames (+ audio, + speech) in, one time-token sequence of events out.

    ``tokenizer`` is attached by ``build_model``/``load_model`` so decoding and
    ``caption`` can be built on the model alone.
    """

    def __init__(self, config: ModelConfig, lm: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.lm = lm
        d = lm.config.d_model
        # a model reading raw frames embeds each row itself, trained with the rest
        # (end to end); the embeddings take the place of feature rows
        self.frame_encoder: FrameEncoder | None = (
            build_frame_encoder(config) if config.reads_frames else None
        )
        self.visual = TemporalEncoder(
            config.visual_dim,
            d,
            config.n_frames,
            config.n_temporal_layers,
            config.n_temporal_heads,
            config.dropout,
            config.input_norm,
            config.standardize,
            config.temporal_conv,
            config.visual_stream_dims if config.visual_fusion == "sum" else (),
        )
        self.audio = (
            TemporalEncoder(
                config.audio_dim,
                d,
                config.n_audio_frames,
                config.n_temporal_layers,
                config.n_temporal_heads,
                config.dropout,
                config.input_norm,
                config.standardize,
                config.temporal_conv,
            )
            if config.use_audio
            else None
        )
        if config.time_pointer and not isinstance(lm.lm_head, TimePointerHead):
            lm.lm_head = TimePointerHead(
                lm.lm_head, config.n_time_tokens, config.time_offset
            )
        # per frame: event under way, starting, ending (logits); an auxiliary task
        # that tells the temporal encoder where events are from the first step on
        self.frame_head = nn.Linear(d, 3) if config.frame_events else None
        # which concepts (frequent caption words) a video or an event window shows
        self.concept_head = (
            nn.Linear(d, len(config.concepts)) if config.concepts else None
        )
        # per frame and anchor: objectness, centre offset, log-length (the
        # two-stage baseline's proposal generator, densevid.proposals)
        self.proposal_head = (
            nn.Linear(d, 3 * len(config.proposal_anchors))
            if config.proposal_anchors
            else None
        )
        if not config.use_speech:
            # the LM encoder only reads speech: without it its layers get no gradient
            # (which DDP rejects) and need no optimizer state
            shared = {id(p) for p in lm.get_input_embeddings().parameters()}
            for p in lm.get_encoder().parameters():
                if id(p) not in shared:
                    p.requires_grad_(False)
        self.tokenizer: Any = None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def members(self) -> tuple[DenseVideoModel]:
        """The networks decoding searches with: this one (an Ensemble has several)."""
        return (self,)

    @property
    def time_tokenizer(self) -> TimeTokenizer:
        if self.tokenizer is None:
            raise DensevidError("model has no tokenizer attached; use load_model")
        return TimeTokenizer(self.tokenizer, self.config.n_time_tokens)

    def encode(
        self,
        visual: torch.Tensor,
        visual_mask: torch.Tensor,
        audio: torch.Tensor | None = None,
        audio_mask: torch.Tensor | None = None,
        speech_ids: torch.Tensor | None = None,
        speech_mask: torch.Tensor | None = None,
        **_: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encodes every stream and concatenates them along time.

        Args:
            visual: [B, F, D_v] frame features, or [B, F, S*H*W*3] uint8 frames
                for a model reading frames; visual_mask: [B, F] bool.
            audio: [B, Fa, D_a]; audio_mask: [B, Fa] (when the model has audio).
            speech_ids: [B, S] token ids; speech_mask: [B, S] (when it has speech).

        Returns:
            hidden [B, L, d_model] and its attention mask [B, L] (long).
        """
        cfg = self.config
        for name, x, dim, extractor in (
            ("visual", visual, cfg.input_dim, cfg.visual_features),
            ("audio", audio, cfg.audio_dim, cfg.audio_features),
        ):
            if x is not None and dim and x.shape[-1] != dim:
                raise DensevidError(
                    f"{name} features ({extractor}) are {x.shape[-1]}-d but the model "
                    f"reads {dim}-d: extracted by another version of the extractor "
                    "or with other options than the model was trained on"
                )
        if self.frame_encoder is not None:
            visual = self.frame_encoder(visual, visual_mask)  # (B, F, D_v)
        states = [self.visual(visual, visual_mask)]
        masks = [visual_mask]
        if isinstance(self.lm.lm_head, TimePointerHead):
            self.lm.lm_head.memory = states[0]
        if self.audio is not None:
            if audio is None or audio_mask is None:
                raise DensevidError("this model needs audio features")
            states.append(self.audio(audio, audio_mask))
            masks.append(audio_mask)
        if self.config.use_speech:
            if speech_ids is None or speech_mask is None:
                raise DensevidError("this model needs a speech transcript")
            enc = self.lm.get_encoder()(
                input_ids=speech_ids, attention_mask=speech_mask
            )
            states.append(enc.last_hidden_state)  # (B, S, d)
            masks.append(speech_mask.bool())
        hidden = torch.cat(states, dim=1)
        mask = torch.cat([m.bool() for m in masks], dim=1).long()
        return hidden, mask

    def forward(
        self,
        labels: torch.Tensor,
        with_frames: bool = False,
        with_visual: bool = False,
        **inputs: torch.Tensor,
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Teacher-forced logits [B, T, V] for target ids ``labels`` [B, T]
        (padded with -100); with ``with_frames``, also the frame-event logits
        [B, F, 3] (under way, start, end) of a model with ``frame_events``; with
        ``with_visual``, last, the encoded visual frames [B, F, d]."""
        from transformers.modeling_outputs import BaseModelOutput

        hidden, mask = self.encode(**inputs)
        decoder_input_ids = self.lm._shift_right(labels)
        out = self.lm(
            encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
            attention_mask=mask,
            decoder_input_ids=decoder_input_ids,
            use_cache=False,
        )
        n_frames = inputs["visual"].shape[1]  # the visual stream comes first
        extra: list[torch.Tensor] = []
        if with_frames:
            if self.frame_head is None:
                raise DensevidError("this model has no frame-event head (frame_events)")
            extra.append(self.frame_head(hidden[:, :n_frames]))
        if with_visual:
            extra.append(hidden[:, :n_frames])
        return (out.logits, *extra) if extra else out.logits

    @torch.no_grad()
    def concept_probs(self, **inputs: torch.Tensor) -> torch.Tensor | None:
        """[B, C] probability of each of ``config.concepts`` in each video (None
        without a concept head)."""
        from densevid.concepts import pooled

        if self.concept_head is None:
            return None
        hidden, _ = self.encode(**inputs)
        n_frames = inputs["visual"].shape[1]
        video = pooled(hidden[:, :n_frames], inputs["visual_mask"])
        return torch.sigmoid(self.concept_head(video).float())

    def caption(
        self, video: str | os.PathLike, options: CaptionOptions | None = None
    ) -> VideoEvents:
        """Events of one video file; see ``densevid.caption.caption``."""
        return caption_video(self, video, options)

    @torch.no_grad()
    def log_likelihood(
        self, labels: torch.Tensor, **inputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sum of log p(token) and number of tokens per reference sequence ([B], [B]).

        The research plan's measure: per-token log-likelihood = sum / count,
        perplexity = exp(-sum / count), totalled over a split.
        """
        logits = self.forward(labels, **inputs).float()
        return token_log_likelihood(logits, labels)


def token_log_likelihood(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence sum of target log-probs and token count; -100 labels ignored."""
    logp = torch.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    valid = labels != IGNORE_INDEX
    picked = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, T)
    return (picked * valid).sum(-1), valid.sum(-1)


def build_lm(config: ModelConfig, vocab_size: int) -> nn.Module:
    from transformers import T5Config, T5ForConditionalGeneration

    if config.lm_config:
        lm_config = T5Config.from_dict(config.lm_config)
        return T5ForConditionalGeneration(lm_config)
    if config.lm:
        try:
            lm = T5ForConditionalGeneration.from_pretrained(config.lm)
        except (OSError, ValueError) as e:
            raise DensevidError(f"{config.lm}: cannot load a T5 model ({e})") from e
        if lm.config.dropout_rate != config.dropout:
            lm.config.dropout_rate = config.dropout
        lm.resize_token_embeddings(vocab_size)
        return lm
    lm_config = T5Config(
        vocab_size=vocab_size,
        d_model=config.d_model,
        d_ff=config.d_ff,
        d_kv=config.d_kv,
        num_layers=config.n_layers,
        num_decoder_layers=config.n_decoder_layers,
        num_heads=config.n_heads,
        dropout_rate=config.dropout,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    lm = T5ForConditionalGeneration(lm_config)
    # transformers initialises an untied T5 head with std 1, which puts initial
    # logits at std ~sqrt(d_model) (loss ~60 instead of ~log V); scale it to 1/sqrt(d)
    with torch.no_grad():
        lm.lm_head.weight.normal_(0.0, config.d_model**-0.5)
    return lm


def build_model(config: ModelConfig, tokenizer: Any) -> DenseVideoModel:
    """A model with fresh temporal encoders around a new or pretrained T5.

    Fills ``config.vocab_size`` and ``config.lm_config`` so the saved config.json is
    complete.
    """
    if config.visual_dim < 1 and not config.reads_frames:
        raise DensevidError("model config: visual_dim must be set (feature dimension)")
    config.time_offset = add_time_tokens(tokenizer, config.n_time_tokens)
    vocab_size = len(tokenizer)
    lm = build_lm(config, vocab_size)
    if lm.get_input_embeddings().num_embeddings < vocab_size:
        lm.resize_token_embeddings(vocab_size)
    config.vocab_size = vocab_size
    config.lm_config = json.loads(lm.config.to_json_string(use_diff=False))
    config.d_model = lm.config.d_model
    model = DenseVideoModel(config, lm)
    model.tokenizer = tokenizer
    return model


def unwrap(model: nn.Module) -> DenseVideoModel:
    """The DenseVideoModel inside a DistributedDataParallel wrapper, if any."""
    return getattr(model, "module", model)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def perplexity(sum_logp: float, n_tokens: int) -> float:
    return math.exp(-sum_logp / max(n_tokens, 1))

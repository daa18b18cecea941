"""The matching model: a joint embedding of an event's frames and a sentence.

Two towers map into one space of unit vectors, so an event and a query are compared
by a dot product and events can sit in a vector index (``densevid.search``):

- the video tower reads ``n_frames`` feature rows sampled over the event's span
  (``inputs.sample_frames``, the blocks of ``features`` that ``blocks`` names, e.g.
  pixels' object-centric ``blobs``), z-scored with the training rows' statistics,
  plus the event's length, through a small transformer, mean-pooled;
- the text tower reads BPE tokens (``densevid.text``'s tokenizer trained on the
  training captions, lower-cased) through a small transformer, mean-pooled.

Trained contrastively (InfoNCE, both directions) by ``densevid train-matcher``
(``densevid.training.matcher``). A checkpoint is a directory like the captioner's:
``config.json`` (``MatcherConfig``, with ``kind: densevid-matcher``),
``model.safetensors`` and the tokenizer's files; never a pickle.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from densevid.config import dataclass_from_dict
from densevid.errors import DensevidError
from densevid.events import read_json
from densevid.inputs import row_times, sample_frames, select_blocks

MATCHER_KIND = "densevid-matcher"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
INIT_TEMPERATURE = 0.07  # CLIP's initial softmax temperature
MAX_LOGIT_SCALE = 100.0  # CLIP's clamp on 1 / temperature


@dataclass
class MatcherConfig:
    """The matching model's architecture and the features it reads.

    ``input_dim``, ``vocab_size``, ``pad_id`` and ``extractor_options`` are filled in
    when a model is built from data; the rest is the recipe's ``model:`` section.
    """

    kind: str = MATCHER_KIND
    features: str = "pixels"  # the feature stream the video tower reads
    blocks: list[str] = field(default_factory=lambda: ["blobs"])  # [] = all
    n_frames: int = 16  # rows sampled over an event's span
    d_model: int = 128
    n_heads: int = 4
    n_video_layers: int = 1
    n_text_layers: int = 1
    d_embed: int = 128  # the joint space's dimension
    max_tokens: int = 32  # a sentence is cut to this many tokens
    dropout: float = 0.1
    # JSFusion-like fine matching as well: each word of a sentence against each
    # frame of an event (the mean over words of the best frame), trained with its
    # own InfoNCE; the index keeps every event's frame vectors to re-rank with it
    hierarchical: bool = False
    input_dim: int = 0
    vocab_size: int = 0
    pad_id: int = 0
    # the options the training features were extracted with (densevid extract)
    extractor_options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        return dataclass_from_dict(cls, d, "matcher config")

    def verify(self) -> Self:
        for name in ("n_frames", "d_model", "n_heads", "d_embed", "max_tokens"):
            if getattr(self, name) < 1:
                raise DensevidError(f"matcher config: {name} must be >= 1")
        if self.d_model % self.n_heads:
            raise DensevidError("matcher config: d_model must divide by n_heads")
        if not 0 <= self.dropout < 1:
            raise DensevidError("matcher config: dropout must be in [0, 1)")
        return self

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")


def _encoder(d_model: int, n_heads: int, n_layers: int, dropout: float) -> nn.Module:
    layer = nn.TransformerEncoderLayer(
        d_model, n_heads, 4 * d_model, dropout, batch_first=True, norm_first=True
    )
    return nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)


class MatchingModel(nn.Module):
    """Video and text towers into one space of unit vectors.

    ``tokenizer`` (a transformers fast tokenizer) is attached after building or
    loading; ``embed_text`` needs it.
    """

    def __init__(self, config: MatcherConfig) -> None:
        super().__init__()
        c = config.verify()
        if c.input_dim < 1 or c.vocab_size < 1:
            raise DensevidError("matcher config: input_dim and vocab_size not set")
        self.config = c
        self.tokenizer: Any = None
        self.register_buffer("input_mean", torch.zeros(c.input_dim))
        self.register_buffer("input_std", torch.ones(c.input_dim))
        self.frame_proj = nn.Linear(c.input_dim, c.d_model)
        self.length_proj = nn.Linear(1, c.d_model)
        self.frame_pos = nn.Parameter(torch.zeros(c.n_frames, c.d_model))
        self.video_encoder = _encoder(c.d_model, c.n_heads, c.n_video_layers, c.dropout)
        self.video_out = nn.Sequential(
            nn.LayerNorm(c.d_model), nn.Linear(c.d_model, c.d_embed)
        )
        self.token_emb = nn.Embedding(c.vocab_size, c.d_model, padding_idx=c.pad_id)
        self.token_pos = nn.Parameter(torch.zeros(c.max_tokens, c.d_model))
        self.text_encoder = _encoder(c.d_model, c.n_heads, c.n_text_layers, c.dropout)
        self.text_out = nn.Sequential(
            nn.LayerNorm(c.d_model), nn.Linear(c.d_model, c.d_embed)
        )
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / INIT_TEMPERATURE)))
        if c.hierarchical:
            self.fine_scale = nn.Parameter(torch.tensor(math.log(1 / INIT_TEMPERATURE)))
        nn.init.normal_(self.frame_pos, std=0.02)
        nn.init.normal_(self.token_pos, std=0.02)

    def forward(
        self,
        frames: torch.Tensor,
        lengths: torch.Tensor,
        ids: torch.Tensor,
        mask: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Both towers at once (what training calls, through DDP when distributed).

        Returns:
            ``video`` (B, d_embed) and ``text`` (B, d_embed) unit vectors, ``scale``
            the softmax's inverse temperature; with ``hierarchical`` also
            ``frames`` (B, n_frames, d_embed), ``tokens`` (B, L, d_embed) unit
            vectors, ``mask`` (B, L) and ``fine_scale``.
        """
        video_states = self._video_states(frames, lengths)  # (B, F, d)
        text_states = self._text_states(ids, mask)  # (B, L, d)
        out = {
            "video": F.normalize(self.video_out(video_states.mean(1)), dim=-1),
            "text": F.normalize(self.text_out(_masked_mean(text_states, mask)), dim=-1),
            "scale": self.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE),
        }
        if self.config.hierarchical:
            out["frames"] = F.normalize(self.video_out(video_states), dim=-1)
            out["tokens"] = F.normalize(self.text_out(text_states), dim=-1)
            out["mask"] = mask
            out["fine_scale"] = self.fine_scale.exp().clamp(max=MAX_LOGIT_SCALE)
        return out

    @property
    def device(self) -> torch.device:
        return self.input_mean.device

    def set_input_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Standardisation of each input dimension (training rows' mean and std)."""
        self.input_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.input_std.copy_(
            torch.as_tensor(np.maximum(std, 1e-6), dtype=torch.float32)
        )

    def encode_video(self, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Events' frames -> unit vectors.

        Args:
            frames: (B, n_frames, input_dim) feature rows over each event's span.
            lengths: (B,) each event's length in seconds.

        Returns:
            (B, d_embed), L2-normalised.
        """
        x = self._video_states(frames, lengths).mean(dim=1)  # (B, d)
        return F.normalize(self.video_out(x), dim=-1)

    def encode_frames(
        self, frames: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """Events' frames -> a unit vector per frame (B, n_frames, d_embed), for
        the fine matching of ``hierarchical``."""
        return F.normalize(self.video_out(self._video_states(frames, lengths)), dim=-1)

    def _video_states(
        self, frames: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        x = (frames - self.input_mean) / self.input_std  # (B, F, D_in)
        x = self.frame_proj(x) + self.frame_pos  # (B, F, d)
        x = x + self.length_proj(torch.log1p(lengths.clamp(min=0))[:, None, None])
        return self.video_encoder(x)  # (B, F, d)

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Token ids -> unit vectors.

        Args:
            ids: (B, L) token ids, L <= max_tokens, padded with ``pad_id``.
            mask: (B, L) true at real tokens.

        Returns:
            (B, d_embed), L2-normalised.
        """
        x = _masked_mean(self._text_states(ids, mask), mask)  # (B, d)
        return F.normalize(self.text_out(x), dim=-1)

    def encode_tokens(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Token ids -> a unit vector per token (B, L, d_embed), for the fine
        matching of ``hierarchical``."""
        return F.normalize(self.text_out(self._text_states(ids, mask)), dim=-1)

    def _text_states(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.token_emb(ids) + self.token_pos[: ids.shape[1]]  # (B, L, d)
        return self.text_encoder(x, src_key_padding_mask=~mask)  # (B, L, d)

    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Sentences -> (ids (B, L), mask (B, L)) on the model's device."""
        if self.tokenizer is None:
            raise DensevidError("matcher has no tokenizer: load it with load_matcher")
        enc = self.tokenizer(
            [normalize_text(t) for t in texts],
            padding=True,
            truncation=True,
            max_length=self.config.max_tokens,
            return_tensors="pt",
        )
        ids = enc["input_ids"].to(self.device)
        return ids, enc["attention_mask"].to(self.device).bool()

    @torch.inference_mode()
    def embed_text(self, texts: Sequence[str], batch_size: int = 512) -> np.ndarray:
        """Sentences -> (N, d_embed) float32 unit vectors."""
        self.eval()
        out = [np.zeros((0, self.config.d_embed), np.float32)]
        for i in range(0, len(texts), batch_size):
            ids, mask = self.tokenize(texts[i : i + batch_size])
            out.append(self.encode_text(ids, mask).float().cpu().numpy())
        return np.concatenate(out)

    @torch.inference_mode()
    def embed_tokens(self, text: str) -> np.ndarray:
        """One sentence -> its tokens' unit vectors (L, d_embed) float32."""
        self.eval()
        ids, mask = self.tokenize([text])
        return self.encode_tokens(ids, mask)[0, mask[0]].float().cpu().numpy()

    @torch.inference_mode()
    def embed_events(
        self,
        frames: np.ndarray,
        lengths: np.ndarray,
        batch_size: int = 512,
        *,
        per_frame: bool = False,
    ) -> np.ndarray:
        """Events' frames (N, n_frames, input_dim) and lengths (N,) -> (N, d_embed)
        float32 unit vectors; ``per_frame``: one per frame, (N, n_frames, d_embed).
        """
        self.eval()
        encode = self.encode_frames if per_frame else self.encode_video
        out = []
        for i in range(0, len(frames), batch_size):
            f = torch.as_tensor(frames[i : i + batch_size], device=self.device)
            n = torch.as_tensor(lengths[i : i + batch_size], device=self.device)
            out.append(encode(f.float(), n.float()).float().cpu().numpy())
        if not out:
            shape = (self.config.n_frames,) if per_frame else ()
            return np.zeros((0, *shape, self.config.d_embed), np.float32)
        return np.concatenate(out)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, d) states, (B, L) mask -> (B, d) mean over the real tokens."""
    m = mask.unsqueeze(-1).to(x.dtype)  # (B, L, 1)
    return (x * m).sum(1) / m.sum(1).clamp(min=1)


def fine_scores(
    tokens: torch.Tensor, mask: torch.Tensor, frames: torch.Tensor
) -> torch.Tensor:
    """JSFusion-like matching of every sentence with every event, word by frame:
    each word's best cosine over the event's frames, averaged over the words.

    Args:
        tokens: (Q, L, d) unit vectors of the sentences' tokens.
        mask: (Q, L) true at real tokens.
        frames: (N, F, d) unit vectors of the events' frames.

    Returns:
        (Q, N) scores in [-1, 1].
    """
    sims = torch.einsum("qld,nfd->qnlf", tokens, frames).amax(-1)  # (Q, N, L)
    m = mask[:, None, :].to(sims.dtype)  # (Q, 1, L)
    return (sims * m).sum(-1) / m.sum(-1).clamp(min=1)


def matching_loss(out: dict[str, torch.Tensor], groups: torch.Tensor) -> torch.Tensor:
    """The InfoNCE of the pooled vectors, plus (``hierarchical``) that of the fine
    word-frame scores, halved."""
    loss = contrastive_loss(out["video"], out["text"], groups, out["scale"])
    if "frames" not in out:
        return loss
    fine = fine_scores(out["tokens"], out["mask"], out["frames"])  # (text, video)
    return (loss + _info_nce(out["fine_scale"] * fine.T, groups)) / 2


def normalize_text(text: str) -> str:
    """What both towers' tokenizer sees: lower case, single spaces."""
    return " ".join(text.lower().split())


def contrastive_loss(
    video: torch.Tensor, text: torch.Tensor, groups: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of pairs (CLIP's loss), where pairs with the
    same ``groups`` id (the same caption) all count as matches: the synthetic
    captions repeat ("The small red circle bounces."), and treating a repeat as a
    negative would push apart what should meet.

    Args:
        video, text: (B, d) unit vectors of the pairs.
        groups: (B,) int ids; equal ids are interchangeable positives.
        scale: the softmax's inverse temperature (a scalar).
    """
    return _info_nce(scale * video @ text.T, groups)


def _info_nce(logits: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE of (video, text) logits (B, B), same groups matching."""
    same = (groups[:, None] == groups[None, :]).float()  # (B, B)
    target = same / same.sum(1, keepdim=True)
    loss_v = -(target * F.log_softmax(logits, dim=1)).sum(1).mean()
    loss_t = -(target * F.log_softmax(logits.T, dim=1)).sum(1).mean()
    return (loss_v + loss_t) / 2


def event_frames(
    array: np.ndarray,
    meta: dict[str, Any],
    duration: float,
    spans: Sequence[tuple[float, float]],
    config: MatcherConfig,
    where: str = "",
) -> np.ndarray:
    """The video tower's input for several events of one video.

    Args:
        array: (T, D) the video's ``config.features`` rows as stored.
        meta: the stream's sidecar (row times, block layout).
        duration: the video's length in seconds.
        spans: (start, end) of each event, seconds.

    Returns:
        (len(spans), n_frames, input_dim) float32.
    """
    rows = select_blocks(np.asarray(array), meta, config.blocks, where)
    times = row_times(meta, len(rows), duration)
    out = np.zeros((len(spans), config.n_frames, rows.shape[1]), np.float32)
    for i, (start, end) in enumerate(spans):
        out[i] = sample_frames(rows, times, start, end, config.n_frames, True)
    return out


def save_matcher(model: MatchingModel, out_dir: str | os.PathLike) -> None:
    """Writes config.json, model.safetensors and the tokenizer's files."""
    from safetensors.torch import save_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "module", model)  # inside DistributedDataParallel
    model.config.save(out / CONFIG_NAME)
    save_model(model, str(out / WEIGHTS_NAME))
    if model.tokenizer is not None:
        model.tokenizer.save_pretrained(str(out))


def load_matcher(
    path: str | os.PathLike, *, device: str | torch.device | None = None
) -> MatchingModel:
    """A matching model from a directory ``densevid train-matcher`` wrote (its
    ``best`` or ``last``), in eval mode with its tokenizer."""
    from safetensors.torch import load_model

    from densevid.device import resolve_device
    from densevid.text import load_tokenizer

    path = Path(path)
    if not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
        raise DensevidError(
            f"{path}: not a matcher checkpoint (needs {CONFIG_NAME} and "
            f"{WEIGHTS_NAME}, as 'densevid train-matcher' writes in OUTPUT/best)"
        )
    raw = read_json(path / CONFIG_NAME)
    if not isinstance(raw, dict) or raw.get("kind") != MATCHER_KIND:
        raise DensevidError(
            f"{path}: a checkpoint of another kind, not a matcher (train one with "
            "densevid train-matcher)"
        )
    model = MatchingModel(MatcherConfig.from_dict(raw))
    try:
        load_model(model, str(path / WEIGHTS_NAME))
    except (RuntimeError, OSError) as e:
        raise DensevidError(f"{path / WEIGHTS_NAME}: weights do not fit ({e})") from e
    model.tokenizer = load_tokenizer(path)
    if device is not None:
        model.to(resolve_device(device))
    return model.eval()

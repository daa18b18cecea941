"""Visual encoders over decoded frames, trained together with the captioner.

A model whose ``visual_features`` is ``frames`` reads rows of raw pixels (the
``frames`` extractor: ``substeps`` consecutive frames per row, uint8) instead of
frozen feature rows; its ``FrameEncoder`` turns each row into one embedding, which
takes the place of a feature row in front of the temporal encoder
(docs/design.md, "End-to-end visual encoder"). Two networks:

- ``cnn``: a small convolutional network defined here and trained from scratch:
  the row's frames stacked as channels (so the first layer can compare them, i.e.
  see motion), stride-2 3x3 convolutions down to a 4 x 4 map, flattened (so the
  embedding keeps where things are: "left", "slides up") and projected;
- ``hf:NAME``: a pretrained CLIP vision tower (a hub name or a local directory,
  transformers' ``CLIPVisionModel``) reading the middle frame of each row resized
  to its image size, fine-tuned (usually at ``encoder_lr_ratio`` < 1). Its config
  is stored in the checkpoint, so loading one needs no hub.

Memory in training is bounded as the end-to-end papers bound it: per step only
``frames_in_backward`` randomly chosen frames of each video go through the encoder
with gradients, the rest under ``no_grad``; ``checkpointing`` recomputes the
encoder's activations in the backward pass instead of keeping them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from densevid.errors import DensevidError

CNN_MIN_SIDE = 4  # px: stride-2 stages stop at this side
ENCODE_CHUNK = 2048  # rows encoded at once without gradients (bounds activations)
# CLIP's image normalisation (openai/CLIP's preprocessing), RGB
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class FrameCNN(nn.Module):
    """A small CNN: rows ``[N, S*H*W*3]`` uint8 -> ``[N, dim]``.

    The S frames of a row are stacked as 3*S input channels; stages of stride-2 3x3
    convolutions (``width`` channels, doubling per stage) bring the side down to
    ``CNN_MIN_SIDE``; the map is flattened and projected to ``dim``.
    """

    def __init__(self, shape: Sequence[int], width: int, dim: int) -> None:
        super().__init__()
        n_sub, height, width_px, channels = shape
        if height != width_px or channels != 3:
            raise DensevidError(f"cnn encoder: frames must be square RGB, got {shape}")
        self.shape = list(shape)
        layers: list[nn.Module] = []
        c_in, c_out, side = 3 * n_sub, width, height
        while side > CNN_MIN_SIDE:
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GELU()]
            c_in, c_out, side = c_out, 2 * c_out, math.ceil(side / 2)
        self.convs = nn.Sequential(*layers)
        self.head = nn.Linear(c_in * side * side, dim)
        self.dim = dim

    @property
    def first_layer(self) -> nn.Module:
        return self.convs[0] if len(self.convs) else self.head

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        n_sub, side = self.shape[0], self.shape[1]
        x = rows.reshape(-1, n_sub, side, side, 3).float() / 127.5 - 1.0
        x = x.permute(0, 1, 4, 2, 3).reshape(-1, 3 * n_sub, side, side)  # (N, 3S, H, W)
        return self.head(self.convs(x).flatten(1))  # (N, dim)


class PretrainedImageEncoder(nn.Module):
    """A CLIP vision tower over the middle frame of each row: ``[N, S*H*W*3]``
    uint8 -> ``[N, hidden]`` (its pooled output)."""

    def __init__(self, shape: Sequence[int], name: str, config: dict[str, Any]) -> None:
        super().__init__()
        from transformers import CLIPVisionConfig, CLIPVisionModel

        if config:
            self.net = CLIPVisionModel(CLIPVisionConfig.from_dict(config))
        else:
            try:
                self.net = CLIPVisionModel.from_pretrained(name)
            except (OSError, ValueError) as e:
                raise DensevidError(
                    f"hf:{name}: cannot load a CLIP vision model ({e})"
                ) from e
        self.shape = list(shape)
        self.image_size = int(self.net.config.image_size)
        self.dim = int(self.net.config.hidden_size)
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1))

    @property
    def first_layer(self) -> nn.Module:
        inner = getattr(self.net, "vision_model", self.net)  # transformers 4 / 5
        return inner.embeddings.patch_embedding

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        n_sub, side = self.shape[0], self.shape[1]
        x = rows.reshape(-1, n_sub, side, side, 3)[:, n_sub // 2]  # (N, H, W, 3)
        x = x.permute(0, 3, 1, 2).float() / 255.0
        if side != self.image_size:
            x = nn.functional.interpolate(
                x, size=self.image_size, mode="bilinear", align_corners=False
            )
        x = (x - self.mean) / self.std
        return self.net(pixel_values=x).pooler_output  # (N, hidden)


class FrameEncoder(nn.Module):
    """Per-row embeddings of a batch of frame rows, with the sparse backward.

    Attributes:
        net: the image network (``FrameCNN`` or ``PretrainedImageEncoder``).
        frames_in_backward: in training, frames per video that go through ``net``
            with gradients (chosen at random each step); 0: all of them.
        checkpointing: recompute ``net``'s activations in the backward pass.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.frames_in_backward = 0
        self.checkpointing = False

    @property
    def dim(self) -> int:
        return int(self.net.dim)

    def _embed(self, rows: torch.Tensor) -> torch.Tensor:
        if self.checkpointing and torch.is_grad_enabled():
            return checkpoint(self.net, rows, use_reentrant=False)
        return self.net(rows)

    def forward(self, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """rows: [B, F, S*H*W*3] uint8; mask: [B, F] bool (True: a real frame).

        Returns [B, F, dim]; padded frames are zeros and never encoded.
        """
        b, f = mask.shape
        flat = rows.reshape(b * f, -1)
        real = mask.reshape(-1)
        with_grad = real.clone()
        k = self.frames_in_backward
        if torch.is_grad_enabled() and self.training and 0 < k < f:
            # k random real frames per video keep their gradient; sorting random
            # keys (padding last) picks them without a Python loop
            keys = torch.rand(b, f, device=mask.device) + (~mask).float()
            picked = keys.argsort(dim=1)[:, :k]  # (B, k)
            chosen = torch.zeros_like(mask).scatter_(1, picked, True)
            with_grad = real & chosen.reshape(-1)
        if not torch.is_grad_enabled() or not any(
            p.requires_grad for p in self.net.parameters()
        ):  # inference, or a frozen encoder
            with_grad = torch.zeros_like(real)
        out = torch.zeros(b * f, self.dim, device=rows.device)
        rest = torch.nonzero(real & ~with_grad).squeeze(1)
        if len(rest):
            with torch.no_grad():
                parts = [
                    self.net(flat[rest[i : i + ENCODE_CHUNK]])
                    for i in range(0, len(rest), ENCODE_CHUNK)
                ]
            out = out.index_copy(0, rest, torch.cat(parts).to(out.dtype))
        grad_rows = torch.nonzero(with_grad).squeeze(1)
        if len(grad_rows):
            emb = self._embed(flat[grad_rows])
            out = out.index_copy(0, grad_rows, emb.to(out.dtype))
        return out.reshape(b, f, self.dim)


def build_frame_encoder(config: Any) -> FrameEncoder:
    """The encoder a ``ModelConfig`` reading frames names (``visual_encoder``).

    Fills ``config.visual_dim`` (the embedding size the temporal encoder reads)
    and, for a pretrained encoder, ``config.encoder_config`` (so the checkpoint
    rebuilds it without the hub).
    """
    if len(config.frame_shape) != 4:
        raise DensevidError(
            "model config: frame_shape (substeps, size, size, 3) is unset: it is "
            "filled from the frames stream when the model is built"
        )
    kind = config.visual_encoder
    if kind == "cnn":
        net: nn.Module = FrameCNN(
            config.frame_shape, config.encoder_width, config.encoder_dim
        )
    elif kind.startswith("hf:"):
        net = PretrainedImageEncoder(
            config.frame_shape, kind[3:], config.encoder_config
        )
        if not config.encoder_config:
            config.encoder_config = net.net.config.to_dict()
    else:
        raise DensevidError(
            f"model config: visual_encoder must be 'cnn' or 'hf:NAME', got {kind!r}"
        )
    config.visual_dim = int(net.dim)
    return FrameEncoder(net)

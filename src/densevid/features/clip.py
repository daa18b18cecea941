"""``clip``: CLIP image embeddings per frame (transformers), as Vid2Seq uses them.

Frames are decoded at ``fps`` (default 1) with the shorter side at the model's image
size, preprocessed here in plain torch (torchvision cannot be installed beside this
torch): bicubic resize of the shorter side with antialiasing, centre crop, scaling
to [0, 1] and normalisation by the model's mean and std (OpenAI's when the model
directory has no ``preprocessor_config.json``). The embeddings are
``CLIPVisionModelWithProjection``'s ``image_embeds``, L2-normalised by default, in
batches, in half precision on a GPU.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from densevid.device import resolve_device
from densevid.errors import DensevidError
from densevid.features.registry import Extractor, FeatureResult

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "openai/clip-vit-large-patch14"  # Vid2Seq's visual backbone
FPS = 1.0
BATCH_SIZE = 32
# OpenAI CLIP's normalisation (its preprocess, and transformers' CLIPImageProcessor).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ClipConfig:
    """Options of the ``clip`` extractor."""

    model: str = DEFAULT_MODEL
    fps: float = FPS
    batch_size: int = BATCH_SIZE
    device: str = "auto"
    fp16: bool = True  # half precision on CUDA; the CPU always computes in float32
    normalize: bool = True


@dataclass(frozen=True)
class Preprocess:
    """How frames become ``pixel_values``: sizes in px, mean/std per RGB channel."""

    size: int = 224  # shorter side after resizing
    crop: int = 224
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD


def preprocess_frames(
    frames: np.ndarray | torch.Tensor, pre: Preprocess = Preprocess()
) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> (N, 3, crop, crop) float32 ``pixel_values``.

    The shorter side is resized to ``pre.size`` (bicubic, antialiased, as PIL's
    resize that CLIPImageProcessor uses), then centre-cropped to ``pre.crop``.
    """
    x = torch.as_tensor(np.asarray(frames))
    if x.ndim != 4 or x.shape[-1] != 3:
        raise DensevidError(f"clip: frames must be (N, H, W, 3), got {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2).float()  # (N, 3, H, W), 0..255
    h, w = x.shape[-2:]
    scale = pre.size / min(h, w)
    # int(), not round(): the output size CLIPImageProcessor computes
    new_h, new_w = max(pre.crop, int(h * scale)), max(pre.crop, int(w * scale))
    if (new_h, new_w) != (h, w):
        x = F.interpolate(
            x, size=(new_h, new_w), mode="bicubic", antialias=True, align_corners=False
        ).clamp(0, 255)
    top, left = (new_h - pre.crop) // 2, (new_w - pre.crop) // 2
    x = x[..., top : top + pre.crop, left : left + pre.crop] / 255.0
    mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
    std = torch.tensor(pre.std).view(1, 3, 1, 1)
    return (x - mean) / std


def load_clip(
    model: str, device: str = "auto", fp16: bool = True
) -> tuple[torch.nn.Module, Preprocess]:
    """Loads CLIPVisionModelWithProjection from a hub name or a local directory."""
    from transformers import CLIPVisionModelWithProjection

    dev = resolve_device(device, "clip")
    try:
        net = CLIPVisionModelWithProjection.from_pretrained(model)
    except (OSError, ValueError) as e:
        raise DensevidError(
            f"cannot load CLIP model '{model}': {str(e).splitlines()[0]} "
            "(offline? pass a local directory saved with save_pretrained)"
        ) from e
    dtype = torch.float16 if (fp16 and dev.type == "cuda") else torch.float32
    net = net.to(device=dev, dtype=dtype).eval()
    return net, _preprocess_for(model, net.config.image_size)


def _preprocess_for(model: str, image_size: int) -> Preprocess:
    """Mean/std/sizes from the model's preprocessor_config.json when it has one."""
    cfg: dict[str, Any] = {}
    path = Path(model) / "preprocessor_config.json"
    if not path.is_file():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(model, "preprocessor_config.json")
            path = Path(cached) if isinstance(cached, str) else path
        except Exception:  # noqa: BLE001 - no hub cache is fine: defaults follow
            pass
    if path.is_file():
        cfg = json.loads(path.read_text())
    size = cfg.get("size", image_size)
    size = size.get("shortest_edge", image_size) if isinstance(size, dict) else size
    crop = cfg.get("crop_size", image_size)
    crop = crop.get("height", image_size) if isinstance(crop, dict) else crop
    return Preprocess(
        size=int(size),
        crop=int(crop),
        mean=tuple(cfg.get("image_mean", CLIP_MEAN)),
        std=tuple(cfg.get("image_std", CLIP_STD)),
    )


@torch.inference_mode()
def embed_frames(
    net: torch.nn.Module,
    frames: np.ndarray,
    pre: Preprocess,
    *,
    batch_size: int = BATCH_SIZE,
    normalize: bool = True,
) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, projection_dim) float32 image embeddings."""
    p = next(net.parameters())
    out = []
    for i in range(0, len(frames), batch_size):
        pix = preprocess_frames(frames[i : i + batch_size], pre)
        emb = net(pixel_values=pix.to(p.device, p.dtype)).image_embeds.float()
        if normalize:
            emb = F.normalize(emb, dim=-1)
        out.append(emb.cpu())
    if not out:
        return np.zeros((0, net.config.projection_dim), np.float32)
    return torch.cat(out).numpy()


class ClipExtractor(Extractor):
    """Decodes frames at ``fps`` and embeds them with a CLIP vision tower."""

    name = "clip"
    kind = "visual"
    Config = ClipConfig

    def __init__(self, config: ClipConfig | None = None, **options: Any) -> None:
        super().__init__(config, **options)
        self._net: torch.nn.Module | None = None
        self._pre: Preprocess | None = None

    def load(self) -> tuple[torch.nn.Module, Preprocess]:
        """Loads the model once, on first use (so workers load their own)."""
        if self._net is None:
            cfg = self.config
            self._net, self._pre = load_clip(cfg.model, cfg.device, cfg.fp16)
        assert self._pre is not None
        return self._net, self._pre

    @property
    def dim(self) -> int | None:
        return self._net.config.projection_dim if self._net is not None else None

    @property
    def weights(self) -> str:
        return self.config.model

    def __call__(self, video: str | os.PathLike) -> FeatureResult:
        from densevid import video as vid

        cfg = self.config
        net, pre = self.load()
        info = vid.probe(video)
        frames, times = vid.read_frames(video, fps=cfg.fps, size=pre.size)
        emb = embed_frames(
            net, frames, pre, batch_size=cfg.batch_size, normalize=cfg.normalize
        )
        meta = self.describe() | {
            "fps": cfg.fps,
            "duration": float(info.duration),
            "timestamps": times,
            "preprocess": {
                "size": pre.size,
                "crop": pre.crop,
                "mean": list(pre.mean),
                "std": list(pre.std),
            },
            "dtype_compute": str(next(net.parameters()).dtype),
        }
        return FeatureResult(meta=meta, array=emb.astype(np.float16))

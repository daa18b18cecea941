"""``frames``: decoded, resized frames themselves, for models that learn their own
visual encoder (``ModelConfig.visual_features: frames``).

Each row (one per ``1 / fps`` s, at the row's time like ``pixels``) holds
``substeps`` consecutive frames decoded at ``fps * substeps``, each squashed to
``size`` x ``size`` RGB, as uint8, flattened row-major from shape
``(substeps, size, size, 3)``. Several frames per row let a per-row encoder see
motion (a blink, a shake) that a single frame every half second aliases away.

Stored in the feature cache like any stream, so decoding happens once (``densevid
extract --features frames``, resumable, in worker processes) and training reads
small uint8 arrays: 32 px x 4 substeps x 2 rows/s is 12 KB per row, 1.2 MB for a
50 s video. ``densevid caption`` runs the extractor on the video it captions, so a
frames model needs no cache at inference.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from densevid.errors import DensevidError
from densevid.features.registry import Extractor, FeatureResult

FPS = 2.0  # rows per second (pixels' rate, so both recipes see the same times)
SIZE = 32  # frame side, px
SUBSTEPS = 4  # frames per row, decoded at fps * substeps


@dataclass(frozen=True)
class FramesConfig:
    """Options of the ``frames`` extractor."""

    fps: float = FPS
    size: int = SIZE
    substeps: int = SUBSTEPS

    def __post_init__(self) -> None:
        if self.fps <= 0 or self.substeps < 1 or self.size < 4:
            raise DensevidError(
                "frames: need fps > 0, substeps >= 1 and size >= 4 (px)"
            )

    @property
    def shape(self) -> list[int]:
        """One row's shape before flattening: (substeps, size, size, 3)."""
        return [self.substeps, self.size, self.size, 3]

    @property
    def dim(self) -> int:
        return int(np.prod(self.shape))

    def layout(self) -> dict[str, dict[str, Any]]:
        return {"frames": {"start": 0, "stop": self.dim, "shape": self.shape}}


def group_rows(frames: np.ndarray, substeps: int) -> np.ndarray:
    """(N, H, W, 3) frames -> (ceil(N / substeps), substeps * H * W * 3) rows; the
    last row is completed by repeating the last frame."""
    n_rows = -(-len(frames) // substeps)
    short = n_rows * substeps - len(frames)
    if short:
        frames = np.concatenate([frames, np.repeat(frames[-1:], short, axis=0)])
    return frames.reshape(n_rows, -1)


def frame_shape(meta: Mapping[str, Any], where: str) -> list[int]:
    """The (substeps, size, size, 3) shape of a frames stream's rows, from its
    sidecar's layout."""
    block = (meta.get("layout") or {}).get("frames")
    if meta.get("extractor") != "frames" or block is None:
        raise DensevidError(
            f"{where}: not a 'frames' stream (extract it with --features frames)"
        )
    return [int(n) for n in block["shape"]]


def mirror_frame_rows(array: np.ndarray, shape: list[int]) -> np.ndarray:
    """Rows of the left-right mirrored video: every frame flipped along its width."""
    x = array.reshape(len(array), *shape)  # (T, S, H, W, 3)
    return np.ascontiguousarray(x[:, :, :, ::-1]).reshape(len(array), -1)


class FramesExtractor(Extractor):
    """Decodes ``size`` px frames at ``fps * substeps`` and groups them per row."""

    name = "frames"
    kind = "visual"
    Config = FramesConfig

    @property
    def dim(self) -> int:
        return self.config.dim

    def __call__(self, video: str | os.PathLike) -> FeatureResult:
        frames, meta = read_substep_frames(self, video, self.config.size)
        array = group_rows(frames, self.config.substeps)
        return FeatureResult(meta=meta, array=array)


def read_substep_frames(
    extractor: Extractor, video: str | os.PathLike, side: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """Frames of ``side`` px at ``fps * substeps`` (``substeps`` of them per row)
    and the row sidecar of an extractor whose config has ``fps``, ``substeps`` and
    ``layout()`` (``frames`` and ``pixels``)."""
    from densevid import video as vid

    cfg = extractor.config
    info = vid.probe(video)
    frames, times = vid.read_frames(
        video, fps=cfg.fps * cfg.substeps, size=(side, side)
    )
    meta = extractor.describe() | {
        "fps": cfg.fps,
        "duration": float(info.duration),
        "timestamps": times[:: cfg.substeps],
        "layout": cfg.layout(),
    }
    return frames, meta

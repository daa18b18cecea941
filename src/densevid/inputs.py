"""Model inputs: feature rows sampled onto the model's frames, and batches of them.

What training (``VideoDataset``), pretraining and captioning a new video share: the
time of each feature row, the choice of a feature array's blocks, ``n`` frames for a
window of the video, and padding items into one batch with masks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from densevid.config import ModelConfig
from densevid.errors import DensevidError
from densevid.text import TimeTokenizer

IGNORE_INDEX = -100  # label value that takes no part in the loss (transformers' own)


def row_times(meta: Mapping[str, Any], n_rows: int, duration: float) -> np.ndarray:
    """Seconds of each feature row: the sidecar's ``timestamps`` when present, else
    rows spread evenly over the video (centres of n equal slices)."""
    ts = meta.get("timestamps")
    if ts is not None and len(ts) == n_rows:
        return np.asarray(ts, dtype=np.float64)
    return (np.arange(n_rows) + 0.5) * duration / max(n_rows, 1)


def select_blocks(
    array: np.ndarray, meta: Mapping[str, Any], blocks: Sequence[str], where: str
) -> np.ndarray:
    """The columns of the named blocks of a feature array (its sidecar's ``layout``,
    e.g. pixels' rgb, edges, motion, blobs), in the order given; all when empty."""
    if not blocks:
        return array
    layout = meta.get("layout") or {}
    unknown = [b for b in blocks if b not in layout]
    if unknown:
        have = ", ".join(layout) or "none: this extractor has no blocks"
        raise DensevidError(f"{where}: no feature block {unknown} (have: {have})")
    cols = [np.arange(layout[b]["start"], layout[b]["stop"]) for b in blocks]
    return array[:, np.concatenate(cols)]


def sample_rows(times: np.ndarray, start: float, end: float, n: int) -> np.ndarray:
    """Indices of exactly ``n`` rows spread uniformly over the rows in [start, end].

    A window with fewer than ``n`` rows repeats rows (nearest row to each slot)
    rather than padding, so slot i always stands for relative time (i + 0.5) / n:
    the relative time tokens then line up with the frames for every video length.
    When the window holds no row, the row nearest its centre is repeated.
    """
    inside = np.flatnonzero((times >= start) & (times <= end))
    if len(inside) == 0:
        inside = np.array([int(np.argmin(np.abs(times - (start + end) / 2)))])
    picks = np.floor((np.arange(n) + 0.5) * len(inside) / n).astype(int)
    return inside[picks]


def sample_frames(
    array: np.ndarray,
    times: np.ndarray,
    start: float,
    end: float,
    n: int,
    interpolate: bool = False,
) -> np.ndarray:
    """Exactly ``n`` feature rows for the window [start, end], slot i standing for
    relative time (i + 0.5) / n.

    ``interpolate`` blends the two rows around each slot's time linearly (clamped at
    the first and last row), so a slot shows the video at its own time; otherwise the
    nearest rows are picked (``sample_rows``), which puts a slot up to half a row
    (0.25 s at 2 rows/s) away from the time the model is told it stands for, and drops
    or repeats rows unevenly whenever the row count is not a multiple of ``n``.
    """
    if not interpolate:
        return array[sample_rows(times, start, end, n)]
    slot = start + (np.arange(n) + 0.5) * (end - start) / n
    return resample_rows(array, times, slot)


def resample_rows(array: np.ndarray, times: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """A stream's rows at other times (``grid``), each dimension interpolated
    linearly between the rows around it (held constant before the first row and
    after the last)."""
    if len(times) == 1:
        return np.repeat(array[:1].astype(np.float32), len(grid), axis=0)
    hi = np.clip(np.searchsorted(times, grid, side="right"), 1, len(times) - 1)
    lo = hi - 1
    gap = np.maximum(times[hi] - times[lo], 1e-9)
    w = np.clip((grid - times[lo]) / gap, 0.0, 1.0)[:, None].astype(np.float32)
    a = array[lo].astype(np.float32)
    return a + w * (array[hi].astype(np.float32) - a)


def join_streams(
    streams: Sequence[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """Several streams of one video as one: the others' rows resampled onto the
    first stream's row times, and concatenated per row (``visual_features`` naming
    several streams, e.g. I3D RGB and flow, or CLIP and I3D at other rates).

    Args:
        streams: (rows (T_i, D_i), row times (T_i,)) per stream, the grid first.

    Returns:
        rows (T_0, sum D_i) and the first stream's row times (T_0,).
    """
    grid = streams[0][1]
    parts = [streams[0][0].astype(np.float32)]
    parts += [resample_rows(array, times, grid) for array, times in streams[1:]]
    return np.concatenate(parts, axis=1), grid


def make_item(
    cfg: ModelConfig,
    time_tokenizer: TimeTokenizer,
    streams: Mapping[str, Any],
    video_id: str,
    start: float,
    end: float,
) -> dict[str, Any]:
    """One model input for the window [start, end] of a video (as ``VideoDataset``
    builds it for training, without labels).

    ``streams`` maps each extractor the model reads to its (rows, row times) or, for
    speech, its timed sentences.
    """
    item: dict[str, Any] = {"video_id": video_id, "duration": end - start}
    array, times = streams[cfg.visual_features]
    item["visual"] = sample_frames(
        array, times, start, end, cfg.n_frames, cfg.interpolates
    )
    if cfg.use_audio:
        array, times = streams[cfg.audio_features]
        item["audio"] = sample_frames(
            array, times, start, end, cfg.n_audio_frames, cfg.interpolate_frames
        )
    if cfg.use_speech:
        speech = [
            {
                "start": max(s["start"], start) - start,
                "end": min(s["end"], end) - start,
                "text": s["text"],
            }
            for s in streams[cfg.speech_features]
            if s["end"] > start and s["start"] < end
        ]
        item["speech_ids"] = time_tokenizer.encode_speech(
            speech, end - start, cfg.max_speech_tokens
        )
    item["labels"] = []
    return item


def _pad_stack(arrays: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """(T_i, D) arrays -> ([B, T_max, D] zero-padded, [B, T_max] bool mask);
    float32, or uint8 for uint8 arrays (raw frames stay a quarter of the size)."""
    width = max(a.shape[0] for a in arrays)
    dim = arrays[0].shape[1]
    dtype = torch.uint8 if arrays[0].dtype == np.uint8 else torch.float32
    out = torch.zeros(len(arrays), width, dim, dtype=dtype)
    mask = torch.zeros(len(arrays), width, dtype=torch.bool)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = torch.from_numpy(np.ascontiguousarray(a))
        mask[i, : a.shape[0]] = True
    return out, mask


def _pad_ids(seqs: Sequence[list[int]], value: int) -> torch.Tensor:
    width = max(1, max(len(s) for s in seqs))
    return torch.tensor([s + [value] * (width - len(s)) for s in seqs])


def collate(items: Sequence[dict[str, Any]], pad_id: int = 0) -> dict[str, Any]:
    """Items -> a batch: padded tensors with masks, labels padded with -100."""
    batch: dict[str, Any] = {
        "video_ids": [it["video_id"] for it in items],
        "durations": torch.tensor([it["duration"] for it in items], dtype=torch.float),
    }
    batch["visual"], batch["visual_mask"] = _pad_stack([it["visual"] for it in items])
    if "audio" in items[0]:
        batch["audio"], batch["audio_mask"] = _pad_stack([it["audio"] for it in items])
    if "speech_ids" in items[0]:
        speech = [it["speech_ids"] for it in items]
        batch["speech_ids"] = _pad_ids(speech, pad_id)
        batch["speech_mask"] = _pad_ids([[1] * len(s) for s in speech], 0)
    batch["labels"] = _pad_ids([it["labels"] for it in items], IGNORE_INDEX)
    if "frame_targets" in items[0]:
        batch["frame_targets"] = _pad_stack([it["frame_targets"] for it in items])[0]
    return batch


def to_device(batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
        for k, v in batch.items()
    }


def model_inputs(batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors the model's ``encode`` takes (everything but labels/durations)."""
    skip = {"labels", "durations", "frame_targets"}
    return {
        k: v for k, v in batch.items() if isinstance(v, torch.Tensor) and k not in skip
    }

"""``pixels``: weight-free frame features a small model can learn from.

Each row (one per ``1 / fps`` s) concatenates four blocks, each flattened row-major:

- ``rgb``  (size, size, 3): an area-averaged RGB thumbnail in [0, 1] — colour,
  position and size of whatever is in the picture;
- ``edges`` (grid, grid, 4): gradient magnitude per cell in 4 orientation bins
  (0, 45, 90, 135 degrees; Sobel on a ``4 * size`` grey image) — shape: a square
  has only 0/90-degree edges, a circle all four, a triangle adds diagonals;
- ``motion`` (grid, grid, 3): per cell, the mean absolute frame difference and the
  Lucas-Kanade flow (dx, dy in cells of the ``2 * size`` motion image per decoded
  step, right/down positive), averaged over the ``substeps`` frame pairs centred on
  the row's time — motion and its direction;
- ``blobs`` (n_hues, 14): object-centric colour blobs. Saturated pixels (chroma above
  the grey of backgrounds) are split softly into ``n_hues`` hue bins (red at 0);
  per bin: mass (fraction of the frame), centroid x, y and spread sx, sy in frame
  units, x-y correlation, the fractions of its outline's gradient in the 4
  orientations and its compactness ``perimeter^2 / (4 pi area)`` (measured on
  64 px frames: about 0.9 for a disc, 1.0 a square, 1.3 a triangle, 1.5 a cross)
  — colour, position, size and shape that do not depend on where the object is;
  then dx, dy of the centroid and d(mass) per second averaged over the row's frame
  pairs — direction of motion, growth, colour change — and the means of their
  absolute values — how much it wobbles: a blink (0.5 s period), a shake or a bounce
  averages to no signed motion over a row but not to no motion energy.
  With ``tint`` (off by default, so features made before it keep their layout),
  three more fields per bin: ``tint``, the bin's chroma above ``TINT_FLOOR`` summed
  over the frame (mean per pixel), and its change per second, signed and absolute.
  ``mass`` counts a pixel only once its chroma passes ``CHROMA_LOW``, so a shape
  fading in or out (alpha 0 to 1) shows in it only in the middle of the fade; tint
  grows linearly with alpha from the first frame to the last, so the fade's start
  and end can be placed. With ``timing`` (off by default too), when within its row
  each bin's change happened: ``when_move`` (centroid speed), ``when_mass`` (mass)
  and, with ``tint``, ``when_tint``: the mean offset from the row's time of its
  frame pairs, weighted by the pairs' absolute change, in rows (-0.5 to 0.5; 0 for
  change spread evenly or none). A row averages its pairs, so a blink or a shake
  that starts within it is otherwise placed only to within the row, 0.5 s.

The video is decoded at ``fps * substeps`` (so motion is measured between frames a
fraction of a row apart) and squashed to a square, so positions are relative to the
frame in both axes. The sidecar's ``layout`` gives each block's slice and shape.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from densevid.errors import DensevidError
from densevid.features.registry import Extractor, FeatureResult

logger = logging.getLogger(__name__)

FPS = 2.0  # rows per second
SIZE = 16  # thumbnail side, px
GRID = 8  # cells per side for edges and motion
SUBSTEPS = 4  # decoded frames per row, for motion
N_ORIENTATIONS = 4
LK_EPS = 1e-4  # Tikhonov term of the per-cell 2x2 Lucas-Kanade system
MAX_FLOW = 4.0  # |flow| clip, px of the motion image per step
CHUNK_FRAMES = 512  # decoded frames converted to float at a time
N_HUES = 8  # hue bins of the blobs block
CHROMA_LOW, CHROMA_HIGH = 0.15, 0.30  # soft threshold of "coloured" (max - min RGB)
MIN_MASS = 1e-3  # fraction of the frame below which a hue bin counts as empty
MAX_COMPACTNESS = 10.0
BLOB_FIELDS = (
    "mass", "x", "y", "spread_x", "spread_y", "corr_xy",
    "edge_0", "edge_45", "edge_90", "edge_135", "compactness",
    "dx_per_s", "dy_per_s", "dmass_per_s",
    "abs_dx_per_s", "abs_dy_per_s", "abs_dmass_per_s",
)  # fmt: skip
N_BLOB_STATIC = 11  # the fields before the motion ones
TINT_FIELDS = ("tint", "dtint_per_s", "abs_dtint_per_s")  # appended with ``tint``
TINT_FLOOR = 0.04  # chroma of grey backgrounds and codec noise, below a faint shape's
TIMING_FIELDS = ("when_move", "when_mass")  # appended with ``timing``
WHEN_EPS = 0.02  # change per second below which a row's timing fades to 0
TAN_22_5 = 0.41421356  # tan(22.5 degrees): half-way between orientation bins
# ITU-R BT.601 luma weights.
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class PixelsConfig:
    """Options of the ``pixels`` extractor."""

    fps: float = FPS
    size: int = SIZE
    grid: int = GRID
    substeps: int = SUBSTEPS
    n_hues: int = N_HUES
    tint: bool = False
    timing: bool = False

    @property
    def blob_fields(self) -> tuple[str, ...]:
        fields = BLOB_FIELDS + TINT_FIELDS if self.tint else BLOB_FIELDS
        if self.timing:
            fields += TIMING_FIELDS + (("when_tint",) if self.tint else ())
        return fields

    def __post_init__(self) -> None:
        if self.fps <= 0 or self.substeps < 1:
            raise DensevidError("pixels: fps must be > 0 and substeps >= 1")
        if self.size < 2 or (4 * self.size) % self.grid or (2 * self.size) % self.grid:
            raise DensevidError(
                f"pixels: grid={self.grid} must divide 2 * size = {2 * self.size}"
            )

    @property
    def edge_side(self) -> int:
        return 4 * self.size

    @property
    def motion_side(self) -> int:
        return 2 * self.size

    def layout(self) -> dict[str, dict[str, Any]]:
        """Block name -> {"start", "stop", "shape"} within a row."""
        blocks = {
            "rgb": (self.size, self.size, 3),
            "edges": (self.grid, self.grid, N_ORIENTATIONS),
            "motion": (self.grid, self.grid, 3),
            "blobs": (self.n_hues, len(self.blob_fields)),
        }
        out, start = {}, 0
        for name, shape in blocks.items():
            n = int(np.prod(shape))
            out[name] = {"start": start, "stop": start + n, "shape": list(shape)}
            start += n
        out["blobs"]["fields"] = list(self.blob_fields)
        return out

    @property
    def dim(self) -> int:
        return self.layout()["blobs"]["stop"]


def _to_float(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [0, 1]."""
    x = torch.as_tensor(np.ascontiguousarray(frames))
    if x.ndim != 4 or x.shape[-1] != 3:
        raise DensevidError(
            f"pixels: frames must be (N, H, W, 3), got {tuple(x.shape)}"
        )
    scale = 255.0 if x.dtype == torch.uint8 else 1.0  # floats are taken as [0, 1]
    return x.permute(0, 3, 1, 2).float() / scale


def _gray(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W) luma."""
    w = torch.tensor(LUMA, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _gradients(g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sobel derivatives of (N, 1, H, W), in intensity per pixel (kernel / 8)."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
    k = torch.stack([kx, kx.T]).unsqueeze(1)  # (2, 1, 3, 3)
    d = F.conv2d(F.pad(g, (1, 1, 1, 1), mode="replicate"), k)  # (N, 2, H, W)
    return d[:, :1], d[:, 1:]


def _cell_mean(x: torch.Tensor, grid: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, grid, grid) means over equal cells (area resize)."""
    h, w = x.shape[-2:]
    if (h, w) == (grid, grid):
        return x
    if h % grid == 0 and w % grid == 0:
        return F.avg_pool2d(x, (h // grid, w // grid))  # much faster than adaptive
    return F.adaptive_avg_pool2d(x, grid)


def edge_orientations(gray: torch.Tensor, grid: int) -> torch.Tensor:
    """(N, 1, H, W) -> (N, grid, grid, 4): mean gradient magnitude per orientation.

    Orientation is the gradient's (unsigned, modulo 180 degrees), hard-binned to the
    nearest of 0, 45, 90, 135 degrees: a vertical edge has a 0-degree gradient.
    """
    per_bin = _oriented_magnitude(*_gradients(gray))  # (N, 4, H, W)
    cells = _cell_mean(per_bin, grid)  # (N, 4, grid, grid)
    return cells.permute(0, 2, 3, 1)


def motion_cells(gray: torch.Tensor, grid: int) -> torch.Tensor:
    """(N, 1, H, W) frames -> (N - 1, grid, grid, 3) per consecutive pair.

    Channels: mean |I_t|, and the Lucas-Kanade flow (u, v) solving
    ``[[Sxx, Sxy], [Sxy, Syy]] (u, v) = -(Sxt, Syt)`` over each cell (sums of products
    of the pair's mean spatial gradients and its time difference), regularised by
    ``LK_EPS`` and clipped to ``MAX_FLOW``.
    """
    if gray.shape[0] < 2:
        return torch.zeros(0, grid, grid, 3)
    it = gray[1:] - gray[:-1]  # (P, 1, H, W)
    gx, gy = _gradients(gray)
    ix = (gx[1:] + gx[:-1]) / 2
    iy = (gy[1:] + gy[:-1]) / 2
    prods = torch.cat([ix * ix, ix * iy, iy * iy, ix * it, iy * it, it.abs()], 1)
    s = _cell_mean(prods, grid)  # (P, 6, grid, grid), means over cells
    sxx, sxy, syy, sxt, syt, energy = s.unbind(1)
    sxx, syy = sxx + LK_EPS, syy + LK_EPS
    det = sxx * syy - sxy * sxy
    u = -(syy * sxt - sxy * syt) / det
    v = -(sxx * syt - sxy * sxt) / det
    flow = torch.stack([u, v], -1).clamp(-MAX_FLOW, MAX_FLOW)
    return torch.cat([energy.unsqueeze(-1), flow], -1)


def hue_masks(x: torch.Tensor, n_hues: int) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> (N, n_hues, H, W) soft masks of coloured pixels.

    A pixel's weight ramps from 0 to 1 as its chroma goes from ``CHROMA_LOW`` to
    ``CHROMA_HIGH`` and is shared between the two hue bins nearest its hue.
    """
    chroma, spread = _hue_split(x, n_hues)
    return spread(_mask_weight(chroma))


def hue_masks_and_tints(
    x: torch.Tensor, n_hues: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``hue_masks`` and, from the same hue split, (N, n_hues) tints: per hue bin,
    the mean over pixels of chroma above ``TINT_FLOOR``."""
    chroma, spread = _hue_split(x, n_hues)
    tints = spread((chroma - TINT_FLOOR).clamp_min(0)).mean((2, 3))
    return spread(_mask_weight(chroma)), tints


def _mask_weight(chroma: torch.Tensor) -> torch.Tensor:
    return ((chroma - CHROMA_LOW) / (CHROMA_HIGH - CHROMA_LOW)).clamp(0, 1)


def _hue_split(
    x: torch.Tensor, n_hues: int
) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """Each pixel's chroma, and a function that shares per-pixel weights between
    the two hue bins nearest each pixel's hue: (N, H, W) -> (N, n_hues, H, W)."""
    r, g, b = x.unbind(1)
    mx, mn = x.max(1).values, x.min(1).values
    chroma = mx - mn
    c = chroma.clamp_min(1e-6)
    hue = (
        torch.where(
            mx == r,
            ((g - b) / c) % 6,
            torch.where(mx == g, (b - r) / c + 2, (r - g) / c + 4),
        )
        / 6
    )  # (N, H, W) in [0, 1)
    pos = hue * n_hues
    k0 = pos.floor().long() % n_hues
    frac = pos - pos.floor()

    def spread(weight: torch.Tensor) -> torch.Tensor:
        masks = torch.zeros(x.shape[0], n_hues, *x.shape[2:])
        masks.scatter_add_(1, k0.unsqueeze(1), (weight * (1 - frac)).unsqueeze(1))
        masks.scatter_add_(
            1, ((k0 + 1) % n_hues).unsqueeze(1), (weight * frac).unsqueeze(1)
        )
        return masks

    return chroma, spread


def blob_stats(masks: torch.Tensor) -> torch.Tensor:
    """(N, K, H, W) soft masks -> (N, K, 11): the static ``BLOB_FIELDS``.

    Empty bins (mass < ``MIN_MASS``) are all zeros.
    """
    n, k, h, w = masks.shape
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w
    area = masks.sum((2, 3))  # (N, K) in pixels
    mass = area / (h * w)
    present = (mass >= MIN_MASS).float()
    denom = area.clamp_min(1e-6)
    px = masks.sum(2)  # (N, K, W): marginal over rows
    py = masks.sum(3)  # (N, K, H)
    cx = (px * xs).sum(-1) / denom
    cy = (py * ys).sum(-1) / denom
    vx = ((px * xs**2).sum(-1) / denom - cx**2).clamp_min(0)
    vy = ((py * ys**2).sum(-1) / denom - cy**2).clamp_min(0)
    exy = torch.einsum("nkhw,h,w->nk", masks, ys, xs) / denom
    sx, sy = vx.sqrt(), vy.sqrt()
    corr = (exy - cx * cy) / (sx * sy).clamp_min(1e-6)
    # outlines only of the bins present: most frames hold a few of the hues
    idx = torch.nonzero(present.reshape(-1) > 0).squeeze(1)
    orient = torch.zeros(n * k, N_ORIENTATIONS)
    if len(idx):
        gx, gy = _gradients(masks.reshape(n * k, 1, h, w)[idx])
        orient[idx] = edge_orientations_sum(gx, gy)
    orient = orient.reshape(n, k, N_ORIENTATIONS)
    perimeter = orient.sum(-1)  # px of outline (Sobel / 8 sums to 1 per px of edge)
    fractions = orient / perimeter.clamp_min(1e-6).unsqueeze(-1)
    compact = (perimeter**2 / (4 * torch.pi * denom)).clamp(0, MAX_COMPACTNESS)
    stats = torch.cat(
        [
            torch.stack([mass, cx, cy, sx, sy, corr.clamp(-1, 1)], -1),
            fractions,
            compact.unsqueeze(-1),
        ],
        -1,
    )
    return stats * present.unsqueeze(-1)


def edge_orientations_sum(gx: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
    """Sobel derivatives (M, 1, H, W) -> (M, 4) gradient magnitude per orientation."""
    return _oriented_magnitude(gx, gy).sum((2, 3))


def _oriented_magnitude(gx: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
    """Derivatives (N, 1, H, W) -> (N, 4, H, W): each pixel's gradient magnitude in
    the bin of its orientation, the nearest of 0/45/90/135 degrees (unsigned).

    Binned without atan2 (the costly part): within 22.5 degrees of horizontal or
    vertical by |g| ratios, else a diagonal by the sign of gx * gy.
    """
    mag = torch.sqrt(gx * gx + gy * gy)
    ax, ay = gx.abs(), gy.abs()
    horizontal = ay <= TAN_22_5 * ax
    vertical = ax < TAN_22_5 * ay
    diagonal = ~(horizontal | vertical)
    rising = diagonal & (gx * gy > 0)
    masks = (horizontal, rising, vertical, diagonal & ~rising)
    return torch.cat([mag * m for m in masks], 1)


def blob_motion(stats: torch.Tensor, steps_per_s: float) -> torch.Tensor:
    """(N, K, 11) per decoded frame -> (N - 1, K, 6): dx, dy, d(mass) per second
    and their absolute values (averaged over a row's pairs later, the signed ones
    give the net motion and the absolute ones the motion energy).

    The centroid's motion counts only where the bin is present in both frames.
    """
    both = (stats[1:, :, 0] > 0) & (stats[:-1, :, 0] > 0)
    d = (stats[1:, :, :3] - stats[:-1, :, :3]) * steps_per_s  # (N - 1, K, 3)
    dxy = d[..., 1:] * both.unsqueeze(-1)
    signed = torch.cat([dxy, d[..., :1]], -1)
    return torch.cat([signed, signed.abs()], -1)


def pixels_features(
    frames: np.ndarray | torch.Tensor, config: PixelsConfig | None = None
) -> np.ndarray:
    """Frames decoded at ``fps * substeps`` -> rows (ceil(N / substeps), D) float32.

    Args:
        frames: (N, H, W, 3) uint8 RGB (any size; squashed to squares here).
        config: the block sizes and the number of decoded frames per row.
    """
    cfg = config or PixelsConfig()
    n, k = len(frames), cfg.substeps
    if n == 0:
        return np.zeros((0, cfg.dim), np.float32)
    rows = torch.arange(0, n, k)  # the decoded frame shown at each row's time
    # Chunks of frames (overlapping by one for the pair across the seam) keep the
    # float copies small however long the video is.
    appearance, pair_chunks, blob_chunks, tint_chunks = [], [], [], []
    for c0 in range(0, n, CHUNK_FRAMES):
        a = max(0, c0 - 1)
        big = _cell_mean(
            _to_float(frames[a : c0 + CHUNK_FRAMES]), cfg.edge_side
        )  # (C, 3, 4s, 4s)
        sel = rows[(rows >= c0) & (rows < c0 + CHUNK_FRAMES)] - a
        rgb = _cell_mean(big[sel], cfg.size).permute(0, 2, 3, 1)
        edges = edge_orientations(_gray(big[sel]), cfg.grid)
        appearance.append(torch.cat([rgb.flatten(1), edges.flatten(1)], 1))
        small = _gray(_cell_mean(big, cfg.motion_side))
        pair_chunks.append(motion_cells(small, cfg.grid))
        if cfg.n_hues and cfg.tint:
            masks, tints = hue_masks_and_tints(big[c0 - a :], cfg.n_hues)
            blob_chunks.append(blob_stats(masks))
            tint_chunks.append(tints)
        elif cfg.n_hues:
            blob_chunks.append(blob_stats(hue_masks(big[c0 - a :], cfg.n_hues)))
    lk = torch.cat(pair_chunks).flatten(1)  # (N - 1, grid * grid * 3)
    blobs = torch.cat(blob_chunks) if blob_chunks else torch.zeros(n, 0, N_BLOB_STATIC)
    steps_per_s = cfg.fps * cfg.substeps
    # per pair (j-1, j), at index j-1: LK cells, then each hue's motion fields
    per_hue = blob_motion(blobs, steps_per_s)  # (N - 1, K, 6)
    pairs = torch.cat([lk, per_hue.flatten(1)], 1)
    n_blob_motion = pairs.shape[1]
    if tint_chunks:
        tints = torch.cat(tint_chunks)  # (N, K)
        d = (tints[1:] - tints[:-1]) * steps_per_s
        pairs = torch.cat([pairs, d, d.abs()], 1)
    # Row i (decoded frame j0 = i k) averages the k pairs (j-1, j) with j from
    # j0 - (k-1)//2 on: centred on j0 (the backward difference when k == 1).
    motion = torch.zeros(len(rows), pairs.shape[1])
    if cfg.timing:
        # per pair and hue: the absolute change whose timing ``timing`` reports
        energy = [per_hue[..., 3] + per_hue[..., 4], per_hue[..., 5]]
        if tint_chunks:
            energy.append(d.abs())
        energy = torch.stack(energy, -1)  # (N - 1, K, E)
        when = torch.zeros(len(rows), cfg.n_hues, energy.shape[-1])
    for r, j0 in enumerate(rows.tolist()):
        lo = max(1, j0 - (k - 1) // 2)
        hi = min(n - 1, j0 - (k - 1) // 2 + k - 1)
        if hi >= lo:
            motion[r] = pairs[lo - 1 : hi].mean(0)
            if cfg.timing:
                # pair (j - 1, j) is centred (j - 0.5 - j0) / k rows from the row
                offset = (torch.arange(lo, hi + 1) - 0.5 - j0) / k
                e = energy[lo - 1 : hi]  # (pairs, K, E)
                total = e.sum(0) + WHEN_EPS * len(offset)
                when[r] = (e * offset[:, None, None]).sum(0) / total
    n_lk = lk.shape[1]
    blob_parts = [
        blobs[rows],
        motion[:, n_lk:n_blob_motion].reshape(
            len(rows), cfg.n_hues, len(BLOB_FIELDS) - N_BLOB_STATIC
        ),
    ]
    if tint_chunks:
        dt = motion[:, n_blob_motion:].reshape(len(rows), 2, cfg.n_hues)
        blob_parts.append(torch.stack([tints[rows], dt[:, 0], dt[:, 1]], -1))
    if cfg.timing:
        blob_parts.append(when)
    blob_rows = torch.cat(blob_parts, -1)  # (R, n_hues, len(cfg.blob_fields))
    out = torch.cat([torch.cat(appearance), motion[:, :n_lk], blob_rows.flatten(1)], 1)
    assert out.shape[1] == cfg.dim
    return out.numpy().astype(np.float32)


def mirror_rows(array: np.ndarray, layout: dict[str, Any]) -> np.ndarray:
    """The rows of the horizontally mirrored video, computed from the rows.

    Training augmentation (``TrainConfig.hflip``): left becomes right without
    re-extracting. Per block: columns of the rgb/edges/motion grids reverse; a
    gradient at 45 degrees turns to 135 and back; horizontal flow and centroid motion
    change sign; a present blob's x becomes 1 - x and its x-y correlation flips.
    """
    out = np.array(array, dtype=np.float32, copy=True)
    swap45 = [0, 3, 2, 1]  # orientation bins 0, 45, 90, 135 -> 0, 135, 90, 45
    for name, block in layout.items():
        shape = [len(out), *block["shape"]]
        x = out[:, block["start"] : block["stop"]].reshape(shape)
        if name == "rgb":
            x = x[:, :, ::-1]
        elif name == "edges":
            x = x[:, :, ::-1][..., swap45]
        elif name == "motion":
            x = x[:, :, ::-1].copy()
            x[..., 1] *= -1  # dx
        elif name == "blobs":
            f = {n: i for i, n in enumerate(block["fields"])}
            present = x[..., f["mass"]] > 0
            x[..., f["x"]] = np.where(present, 1.0 - x[..., f["x"]], 0.0)
            for n in ("corr_xy", "dx_per_s"):
                x[..., f[n]] *= -1
            e45, e135 = f["edge_45"], f["edge_135"]
            x[..., [e45, e135]] = x[..., [e135, e45]]
        else:
            raise DensevidError(f"pixels: cannot mirror an unknown block {name!r}")
        out[:, block["start"] : block["stop"]] = x.reshape(len(out), -1)
    return out


class PixelsExtractor(Extractor):
    """Decodes small frames at ``fps * substeps`` and computes ``pixels_features``."""

    name = "pixels"
    kind = "visual"
    Config = PixelsConfig

    @property
    def dim(self) -> int:
        return self.config.dim

    def __call__(self, video: str | os.PathLike) -> FeatureResult:
        from densevid.features.frames import read_substep_frames

        frames, meta = read_substep_frames(self, video, self.config.edge_side)
        return FeatureResult(meta=meta, array=pixels_features(frames, self.config))

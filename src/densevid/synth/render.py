"""Frames of a scene, drawn with numpy: a scrolling cluttered background, grey
distractors drifting across it, and the captioned objects on top.

Shapes are anti-aliased coverage masks, cached per (shape, size), and blended only
inside each object's box, so a 128x128 frame costs well under a millisecond.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import lru_cache

import numpy as np

from densevid.synth.world import COLOURS, FRAME_SIZE, Scene, state_at

SUPERSAMPLE = 4  # sub-pixels per pixel side for anti-aliased masks
SIZE_STEP_PX = 0.5  # mask sizes are cached on this grid
BACKGROUND_GREY = 105  # mean level of the background
BACKGROUND_CONTRAST = 28  # +- grey levels of the background texture
N_CLUTTER = 14  # rectangles and bars scattered over the background texture


def render_frames(scene: Scene) -> Iterator[np.ndarray]:
    """Yields the scene's frames, (FRAME_SIZE, FRAME_SIZE, 3) uint8 RGB each."""
    tile = background_texture(scene.background_seed)
    tiled = np.tile(tile, (2, 2, 1))  # (2S, 2S, 3): any S x S window wraps around
    vx, vy = scene.background_velocity
    for f in range(scene.n_frames):
        t = f / scene.fps
        ox = int(round(vx * t)) % FRAME_SIZE
        oy = int(round(vy * t)) % FRAME_SIZE
        frame = tiled[oy : oy + FRAME_SIZE, ox : ox + FRAME_SIZE].copy()
        for d in scene.distractors:
            x = _reflect(d.x0 + d.vx * t)
            y = _reflect(d.y0 + d.vy * t)
            _blit(frame, d.shape, d.size, x, y, (d.grey, d.grey, d.grey), 0.85)
        states = [(state_at(obj, t), obj.shape) for obj in scene.objects]
        # larger objects first, so a small one passing a big one stays in view
        for s, shape in sorted(states, key=lambda st: -st[0].size):
            if not s.visible or s.alpha <= 0.0:
                continue
            rgb = s.rgb if s.rgb is not None else COLOURS[s.colour]
            _blit(frame, shape, s.size, s.x, s.y, rgb, s.alpha)
        yield frame


def background_texture(seed: int) -> np.ndarray:
    """A tileable (S, S, 3) uint8 texture: smooth low-contrast noise, faint tint,
    scattered darker and lighter bars (clutter that moves with the background)."""
    rng = np.random.default_rng(seed)
    n = FRAME_SIZE
    # periodic smooth noise: a few low spatial frequencies with random phases
    yy, xx = np.mgrid[0:n, 0:n] / n
    field = np.zeros((n, n))
    for _ in range(6):
        kx, ky = rng.integers(-3, 4, size=2)
        field += rng.normal() * np.cos(
            2 * np.pi * (kx * xx + ky * yy) + rng.uniform(0, 6.3)
        )
    field /= np.abs(field).max() + 1e-9
    grey = BACKGROUND_GREY + BACKGROUND_CONTRAST * field
    tint = rng.uniform(-8, 8, size=3)
    img = grey[..., None] + tint
    for _ in range(N_CLUTTER):
        h, w = int(rng.integers(2, 10)), int(rng.integers(6, 40))
        if rng.random() < 0.5:
            h, w = w, h
        y, x = int(rng.integers(n)), int(rng.integers(n))
        level = rng.uniform(-35, 35)
        patch = np.zeros((n, n), bool)
        patch[:h, :w] = True
        img += level * np.roll(patch, (y, x), axis=(0, 1))[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _reflect(v: float) -> float:
    """Position bouncing between the frame edges (a triangle wave)."""
    period = 2 * FRAME_SIZE
    v = v % period
    return v if v < FRAME_SIZE else period - v


@lru_cache(maxsize=2048)
def shape_mask(shape: str, size: float) -> np.ndarray:
    """(k, k) float32 coverage in [0, 1] of a shape whose box side is ``size`` px."""
    k = int(math.ceil(size)) + 2
    m = SUPERSAMPLE
    c = (np.arange(k * m) + 0.5) / m - k / 2  # sub-pixel centres, origin mid-box
    y, x = np.meshgrid(c, c, indexing="ij")
    r = size / 2
    if shape == "circle":
        inside = x * x + y * y <= r * r
    elif shape == "square":
        h = 0.88 * r
        inside = (np.abs(x) <= h) & (np.abs(y) <= h)
    elif shape == "triangle":  # apex up, base at the bottom of the box
        yt = (y + r) / (2 * r)  # 0 at the apex, 1 at the base
        inside = (yt >= 0) & (yt <= 1) & (np.abs(x) <= r * yt)
    elif shape == "diamond":  # a square on its corner: edges only at 45 and 135 deg
        inside = np.abs(x) + np.abs(y) <= r
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return inside.reshape(k, m, k, m).mean(axis=(1, 3)).astype(np.float32)


def _blit(
    frame: np.ndarray,
    shape: str,
    size: float,
    cx: float,
    cy: float,
    rgb: tuple[float, float, float],
    alpha: float,
) -> None:
    """Blends a shape centred at (cx, cy) into the frame, in place."""
    size = max(SIZE_STEP_PX, round(size / SIZE_STEP_PX) * SIZE_STEP_PX)
    mask = shape_mask(shape, size)
    k = mask.shape[0]
    x0 = int(round(cx - k / 2))
    y0 = int(round(cy - k / 2))
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + k, FRAME_SIZE), min(y0 + k, FRAME_SIZE)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    a = mask[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0, None] * alpha
    region = frame[fy0:fy1, fx0:fx1].astype(np.float32)
    region += (np.asarray(rgb, np.float32) - region) * a
    frame[fy0:fy1, fx0:fx1] = (region + 0.5).astype(np.uint8)

"""pixels: colour, position, size, edges and motion read back from known frames."""

import numpy as np
import pytest

from densevid.features.pixels import PixelsConfig, pixels_features

CFG = PixelsConfig(substeps=1)


def _block(row: np.ndarray, name: str, cfg: PixelsConfig = CFG) -> np.ndarray:
    b = cfg.layout()[name]
    return row[b["start"] : b["stop"]].reshape(b["shape"])


def test_dim_and_layout():
    assert CFG.dim == 16 * 16 * 3 + 8 * 8 * 4 + 8 * 8 * 3 + 8 * 17
    assert pixels_features(np.zeros((3, 64, 64, 3), np.uint8), CFG).shape == (
        3,
        CFG.dim,
    )
    cfg4 = PixelsConfig(substeps=4)
    assert pixels_features(np.zeros((9, 64, 64, 3), np.uint8), cfg4).shape[0] == 3
    tinted = PixelsConfig(substeps=4, tint=True)  # 3 more fields per hue bin
    assert tinted.dim == CFG.dim + 8 * 3
    assert tinted.layout()["blobs"]["fields"][-3:] == [
        "tint",
        "dtint_per_s",
        "abs_dtint_per_s",
    ]
    assert pixels_features(np.zeros((9, 64, 64, 3), np.uint8), tinted).shape == (
        3,
        tinted.dim,
    )


def test_colour_position_and_size_in_thumbnail():
    frame = np.zeros((1, 128, 128, 3), np.uint8)
    frame[0, 0:32, 64:128] = (0, 0, 255)  # blue block: top rows, right half
    frame[0, 96:128, 0:16] = (255, 255, 0)  # small yellow block: bottom-left
    rgb = _block(pixels_features(frame, CFG)[0], "rgb")  # (16, 16, 3), 8 px per cell
    np.testing.assert_allclose(rgb[0:4, 8:16], [[[0, 0, 1]] * 8] * 4)
    np.testing.assert_allclose(rgb[12:16, 0:2], [[[1, 1, 0]] * 2] * 4)
    rgb_sum = rgb.sum(-1)
    assert (rgb_sum > 0).sum() == 4 * 8 + 4 * 2  # sizes: 32 cells vs 8 cells
    assert rgb_sum[4:12].sum() == 0


def test_area_averaging_gives_partial_coverage():
    frame = np.zeros((1, 64, 64, 3), np.uint8)
    frame[0, 0:2, 0:4] = 255  # half of the first 4x4 thumbnail cell
    rgb = _block(pixels_features(frame, CFG)[0], "rgb")
    np.testing.assert_allclose(rgb[0, 0], [0.5, 0.5, 0.5], atol=1e-6)


@pytest.mark.parametrize(
    ("axis", "expected_bin"), [("vertical", 0), ("horizontal", 2), ("diagonal", 1)]
)
def test_edge_orientation_bins(axis, expected_bin):
    yy, xx = np.mgrid[0:64, 0:64]
    mask = {"vertical": xx >= 32, "horizontal": yy >= 32, "diagonal": xx + yy >= 64}[
        axis
    ]
    frame = np.repeat(np.where(mask, 255, 0).astype(np.uint8)[None, ..., None], 3, -1)
    edges = _block(pixels_features(frame, CFG)[0], "edges")  # (8, 8, 4)
    per_bin = edges.sum((0, 1))
    assert per_bin.argmax() == expected_bin
    assert per_bin[expected_bin] > 0.9 * per_bin.sum()
    if axis == "vertical":
        # Edge between columns 31|32 of the 64 px image: cells 3 and 4 only.
        assert edges[:, [0, 1, 2, 5, 6, 7]].sum() == 0
        # Sobel / 8 of a unit step gives 0.5 in each of the two columns beside it:
        # 8 rows x 1 column of 0.5 out of 8 x 8 px per cell -> 1/16 per cell.
        np.testing.assert_allclose(edges[:, 3, 0], 1 / 16, atol=1e-6)


def _blob_frames(dx: float, dy: float, n: int = 3) -> np.ndarray:
    """A Gaussian blob (sigma 6 px at 64 px) moving (dx, dy) px per frame."""
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float64)
    frames = []
    for i in range(n):
        cx, cy = 28 + i * dx, 30 + i * dy
        g = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 6.0**2))
        frames.append(np.repeat(g[..., None], 3, -1))
    return np.array(frames, np.float32)


@pytest.mark.parametrize(("dx", "dy"), [(2.0, 0.0), (0.0, -2.0), (-1.0, 1.0)])
def test_motion_flow_recovers_translation(dx, dy):
    frames = _blob_frames(dx, dy)
    motion = _block(pixels_features(frames, CFG)[1], "motion")  # (8, 8, 3)
    energy, u, v = motion[..., 0], motion[..., 1], motion[..., 2]
    w = energy / energy.sum()
    # The motion image is 32 px: 2 px of the 64 px frame are 1 px of flow.
    assert (w * u).sum() == pytest.approx(dx / 2, abs=0.15)
    assert (w * v).sum() == pytest.approx(dy / 2, abs=0.15)


def test_static_video_has_no_motion_and_first_row_is_zero():
    frames = _blob_frames(0.0, 0.0)
    feats = pixels_features(frames, CFG)
    np.testing.assert_allclose(_block(feats[1], "motion"), 0, atol=1e-6)
    moving = pixels_features(_blob_frames(2.0, 0.0), CFG)
    np.testing.assert_allclose(_block(moving[0], "motion"), 0, atol=1e-6)
    assert _block(moving[1], "motion")[..., 0].sum() > 0


def test_substeps_average_the_centred_pairs():
    frames = _blob_frames(2.0, 0.0, n=9)
    per_pair = pixels_features(frames, CFG)  # row j: pair (j-1, j)
    rows = pixels_features(frames, PixelsConfig(substeps=4))
    m = CFG.layout()["motion"]
    # Row 1 is frame 4; its pairs end at frames 3, 4, 5, 6.
    expected = per_pair[3:7, m["start"] : m["stop"]].mean(0)
    np.testing.assert_allclose(rows[1, m["start"] : m["stop"]], expected, atol=1e-6)
    np.testing.assert_allclose(rows[1, : m["start"]], per_pair[4, : m["start"]])


def test_chunked_processing_equals_whole(monkeypatch):
    from densevid.features import pixels

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (203, 32, 32, 3), dtype=np.uint8)
    cfg = PixelsConfig(substeps=4)
    whole = pixels_features(frames, cfg)
    monkeypatch.setattr(pixels, "CHUNK_FRAMES", 50)
    np.testing.assert_array_equal(pixels_features(frames, cfg), whole)


def _blobs(row: np.ndarray, cfg: PixelsConfig = CFG) -> np.ndarray:
    return _block(row, "blobs", cfg)  # (n_hues, len(BLOB_FIELDS))


def _scene(shape: str, colour, cx: float, cy: float, r: float) -> np.ndarray:
    """One shape of half-size r (px) on a mid-grey 64 px frame."""
    yy, xx = np.mgrid[0:64, 0:64] + 0.5
    dx, dy = xx - cx, yy - cy
    mask = {
        "disc": dx**2 + dy**2 <= r**2,
        "square": (abs(dx) <= r) & (abs(dy) <= r),
        "triangle": (abs(dy) <= r) & (abs(dx) <= (dy + r) / 2),
        "cross": ((abs(dx) <= r / 3) & (abs(dy) <= r))
        | ((abs(dy) <= r / 3) & (abs(dx) <= r)),
    }[shape]
    img = np.full((64, 64, 3), 105, np.uint8)
    img[mask] = colour
    return img


def test_blob_colour_position_and_size():
    # red 16x16 square centred at (20, 40) px of 64: hue bin 0 only
    frame = _scene("square", (230, 30, 30), 20.0, 40.0, 8.0)[None]
    b = _blobs(pixels_features(frame, CFG)[0])
    assert (b[1:, 0] == 0).all()
    mass, x, y, sx, sy, corr = b[0, :6]
    assert mass == pytest.approx(16 * 16 / 64**2, rel=1e-3)
    assert (x, y) == pytest.approx((20 / 64, 40 / 64), abs=1e-4)
    # spread of 16 equally weighted pixel centres: sqrt((16^2 - 1) / 12) px
    assert (sx, sy) == pytest.approx((((16**2 - 1) / 12) ** 0.5 / 64,) * 2, rel=1e-4)
    assert corr == pytest.approx(0, abs=1e-3)
    # blue (hue 225 degrees) lands in bin 5 of 8 (centres every 45 degrees)
    blue = _blobs(
        pixels_features(_scene("disc", (0, 64, 255), 32, 32, 8)[None], CFG)[0]
    )
    assert blue[:, 0].argmax() == 5


def test_blob_shape_fields_tell_shapes_apart():
    fields = {}
    for shape in ("disc", "square", "triangle", "cross"):
        frame = _scene(shape, (40, 190, 60), 30.5, 33.5, 12.0)[None]
        b = _blobs(pixels_features(frame, CFG)[0])
        fields[shape] = b[b[:, 0].argmax(), 6:11]  # 4 edge fractions, compactness
    sq, disc, cross = fields["square"], fields["disc"], fields["cross"]
    assert sq[[0, 2]].sum() > 0.9  # a square's outline: horizontal and vertical
    assert disc[[1, 3]].sum() > 0.4  # a disc's: all four orientations
    assert fields["triangle"][[1, 3]].sum() > 0.3  # a triangle's sides: diagonals
    compact = [fields[s][4] for s in ("disc", "square", "triangle", "cross")]
    assert compact == sorted(compact)  # disc < square < triangle < cross
    assert cross[4] > 1.3 * sq[4]


def test_blob_motion_and_growth_per_second():
    frames = np.stack(
        [_scene("square", (230, 30, 30), 20 + 3 * i, 30, 6 + i) for i in range(3)]
    )
    cfg = PixelsConfig(fps=8.0, substeps=1)
    b = _blobs(pixels_features(frames, cfg)[1], cfg)[0]
    dx, dy, dmass = b[11:14]
    assert dx == pytest.approx(3 / 64 * 8, rel=1e-3)  # 3 px/frame at 8 frames/s
    assert dy == pytest.approx(0, abs=1e-4)
    assert dmass == pytest.approx((14**2 - 12**2) / 64**2 * 8, rel=1e-3)
    np.testing.assert_allclose(b[14:], np.abs(b[11:14]), atol=1e-6)


def test_blink_and_shake_cancel_in_signed_motion_but_not_in_its_energy():
    # row 1 averages 4 pairs (frames 2-6): the square steps right-left-right-
    # left (a shake), or goes off-on-off-on (a blink): no net change, much energy
    cfg = PixelsConfig(fps=2.0, substeps=4)
    red, grey = (230, 30, 30), (105, 105, 105)
    shake = np.stack([_scene("square", red, x, 30, 6) for x in [20, 23] * 4])
    b = _blobs(pixels_features(shake, cfg)[1], cfg)[0]
    dx, abs_dx = b[11], b[14]
    assert dx == pytest.approx(0, abs=1e-6)
    assert abs_dx == pytest.approx(3 / 64 * 8, rel=1e-3)
    blink = np.stack([_scene("square", c, 20, 30, 6) for c in [red, grey] * 4])
    b = _blobs(pixels_features(blink, cfg)[1], cfg)[0]
    dmass, abs_dmass = b[13], b[16]
    assert dmass == pytest.approx(0, abs=1e-6)
    assert abs_dmass == pytest.approx(12**2 / 64**2 * 8, rel=1e-3)


def test_colour_change_moves_mass_between_hue_bins():
    frames = np.stack(
        [_scene("disc", c, 32, 32, 10) for c in [(230, 30, 30), (40, 190, 60)]]
    )
    cfg = PixelsConfig(fps=8.0, substeps=1)
    b = _blobs(pixels_features(frames, cfg)[1], cfg)
    assert b[0, 13] < 0 and b[:, 13].max() > 0  # red loses, green gains
    assert b[0, 11] == 0  # no centroid motion for a bin present in one frame only


def test_tint_follows_a_fade_from_start_to_end():
    # a green square fading in over a grey background, alpha 0 to 1 in 10 frames:
    # mass sees only the middle of the fade, tint rises in step with alpha
    grey, green = np.full(3, 105.0), np.array([40.0, 190.0, 60.0])
    alphas = np.linspace(0, 1, 11)
    frames = np.stack(
        [
            _scene("square", tuple(np.rint(grey + (green - grey) * a)), 30, 30, 8)
            for a in alphas
        ]
    )
    cfg = PixelsConfig(fps=8.0, substeps=1, tint=True)
    b = np.stack([_blobs(row, cfg) for row in pixels_features(frames, cfg)])
    fields = cfg.blob_fields
    mass = b[:, :, fields.index("mass")].sum(1)
    tint = b[:, :, fields.index("tint")].sum(1)
    assert mass[1] == 0 and mass[2] == 0  # too faint for the coloured-pixel mask
    assert mass[6] == pytest.approx(mass[10], rel=0.05)  # and full from half-way
    expected = alphas * tint[-1]  # linear in alpha (up to the floor and rounding)
    np.testing.assert_allclose(tint[1:], expected[1:], atol=0.12 * tint[-1])
    assert (np.diff(tint) > 0).all()
    dtint = b[:, :, fields.index("dtint_per_s")].sum(1)
    assert dtint[5] == pytest.approx(tint[-1] / 10 * 8, rel=0.25)  # per s at 8 fps
    # the other fields are those of rows without the option
    plain_cfg = PixelsConfig(fps=8.0, substeps=1)
    plain = pixels_features(frames, plain_cfg)
    tinted = pixels_features(frames, cfg)
    start = plain_cfg.layout()["blobs"]["start"]
    np.testing.assert_array_equal(plain[:, :start], tinted[:, :start])
    np.testing.assert_array_equal(
        np.stack([_blobs(r, plain_cfg) for r in plain]), b[:, :, : len(fields) - 3]
    )


def test_timing_says_when_within_a_row_a_change_happened():
    # row 1 (decoded frame 4 of 9, 4 per row) averages pairs (2,3)..(5,6): a square
    # still until frame 5 and moving from there changes only in the last pair
    cfg = PixelsConfig(fps=2.0, substeps=4, timing=True)
    red = (230, 30, 30)
    xs = {
        "late": [20] * 6 + [23, 26, 29],
        "early": [20, 20, 20, 23, 26, 29, 32, 35, 38],
        "still": [20] * 9,
    }
    when = {}
    for name, x in xs.items():
        frames = np.stack([_scene("square", red, xi, 30, 6) for xi in x])
        b = _blobs(pixels_features(frames, cfg)[1], cfg)
        when[name] = b[0, cfg.blob_fields.index("when_move")]
    assert when["still"] == 0
    assert when["late"] > 0.3  # the last pair sits 3/8 of a row after the row
    assert when["early"] == pytest.approx(0.0, abs=0.02)  # moving all through it
    assert cfg.dim == CFG.dim + 8 * 2
    assert PixelsConfig(tint=True, timing=True).blob_fields[-3:] == (
        "when_move",
        "when_mass",
        "when_tint",
    )


def test_mirrored_rows_equal_the_rows_of_the_mirrored_video():
    from densevid.features.pixels import mirror_rows

    rng = np.random.default_rng(3)
    frames = []
    for i in range(9):  # a triangle moving right and a disc growing, on noise
        img = _scene("triangle", (230, 30, 30), 14 + 2 * i, 20, 7)
        disc = _scene("disc", (40, 60, 230), 44, 40, 5 + 0.5 * i)
        img = np.where((disc != 105).any(-1, keepdims=True), disc, img)
        noise = rng.integers(-12, 13, img.shape)
        frames.append(np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8))
    frames = np.stack(frames)
    cfg = PixelsConfig(fps=2.0, substeps=4, tint=True, timing=True)
    rows = pixels_features(frames, cfg)
    flipped = pixels_features(frames[:, :, ::-1], cfg)
    np.testing.assert_allclose(mirror_rows(rows, cfg.layout()), flipped, atol=1e-4)
    b = _blobs(rows[1], cfg)
    assert b[0, 11] > 0 and _blobs(flipped[1], cfg)[0, 11] < 0  # dx changes sign

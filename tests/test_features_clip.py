"""clip: preprocessing against hand-computed values, embeddings against the model."""

import json

import numpy as np
import pytest
import torch

from densevid.errors import DensevidError
from densevid.features.clip import (
    CLIP_MEAN,
    CLIP_STD,
    ClipExtractor,
    Preprocess,
    embed_frames,
    load_clip,
    preprocess_frames,
)
from helpers import save_tiny_clip


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    torch.manual_seed(0)
    return save_tiny_clip(tmp_path_factory.mktemp("tiny_clip"), projection_dim=16)


def test_constant_image_normalises_per_channel():
    frames = np.empty((2, 40, 60, 3), np.uint8)
    frames[0] = (255, 0, 128)
    frames[1] = (10, 20, 30)
    pix = preprocess_frames(frames, Preprocess(size=32, crop=32))
    assert pix.shape == (2, 3, 32, 32)
    for i, rgb in enumerate([(255, 0, 128), (10, 20, 30)]):
        expected = [
            (v / 255 - m) / s for v, m, s in zip(rgb, CLIP_MEAN, CLIP_STD, strict=True)
        ]
        for c in range(3):
            np.testing.assert_allclose(pix[i, c], expected[c], atol=1e-5)


def test_shorter_side_resize_and_centre_crop():
    # 32 x 96 (H x W): three 32-px columns red | green | blue; the crop keeps green.
    frames = np.zeros((1, 32, 96, 3), np.uint8)
    frames[0, :, :32, 0] = 255
    frames[0, :, 32:64, 1] = 255
    frames[0, :, 64:, 2] = 255
    pix = preprocess_frames(
        frames, Preprocess(size=32, crop=32, mean=(0,) * 3, std=(1,) * 3)
    )
    np.testing.assert_allclose(pix[0, 1], 1.0, atol=1e-6)
    np.testing.assert_allclose(pix[0, [0, 2]], 0.0, atol=1e-6)
    # Downscaling 2x (64 -> 32 px short side) averages neighbouring pixels.
    stripes = np.zeros((1, 64, 64, 3), np.uint8)
    stripes[0, :, ::2] = 200  # 1-px vertical stripes
    pix = preprocess_frames(
        stripes, Preprocess(size=32, crop=32, mean=(0,) * 3, std=(1,) * 3)
    )
    np.testing.assert_allclose(pix[0, :, 8:24, 8:24], 100 / 255, atol=0.02)


def test_embeddings_equal_direct_model_call(tiny_clip):
    net, pre = load_clip(str(tiny_clip), device="cpu")
    assert (pre.size, pre.crop, pre.mean) == (32, 32, CLIP_MEAN)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 32, 48, 3), dtype=np.uint8)
    got = embed_frames(net, frames, pre, batch_size=2, normalize=False)
    # Reference: pixel_values by hand (short side already 32: crop columns 8..40).
    x = torch.from_numpy(frames[:, :, 8:40]).permute(0, 3, 1, 2).float()
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = net(pixel_values=(x / 255 - mean) / std).image_embeds.numpy()
    assert got.shape == (5, 16)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    unit = embed_frames(net, frames, pre, batch_size=4)
    np.testing.assert_allclose(
        unit, ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=1e-5
    )


def test_preprocessor_config_is_read(tiny_clip, tmp_path):
    import shutil

    d = tmp_path / "m"
    shutil.copytree(tiny_clip, d)
    (d / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "size": {"shortest_edge": 40},
                "crop_size": {"height": 32},
                "image_mean": [0.5, 0.5, 0.5],
                "image_std": [0.25, 0.25, 0.25],
            }
        )
    )
    _, pre = load_clip(str(d), device="cpu")
    assert pre == Preprocess(size=40, crop=32, mean=(0.5,) * 3, std=(0.25,) * 3)


def test_missing_model_is_one_clear_error(tmp_path):
    with pytest.raises(DensevidError, match="cannot load CLIP model"):
        ClipExtractor(model=str(tmp_path / "nope"), device="cpu").load()
    with pytest.raises(DensevidError, match="has no option"):
        ClipExtractor(modle="x")


@pytest.mark.cuda
def test_fp16_on_gpu_matches_fp32(tiny_clip):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    frames = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    cpu, pre = load_clip(str(tiny_clip), device="cpu")
    gpu, _ = load_clip(str(tiny_clip), device="cuda", fp16=True)
    assert next(gpu.parameters()).dtype == torch.float16
    np.testing.assert_allclose(
        embed_frames(gpu, frames, pre), embed_frames(cpu, frames, pre), atol=5e-3
    )

"""What several test modules build alike."""

import os
import subprocess
import sys
from pathlib import Path

# The smallest joint model worth testing: a 1 + 1 layer T5 of width 32 and a temporal
# encoder of one convolution block and one layer, as the shipped model has; modules
# add their own frames, time tokens and dimensions.
TINY_LM = {
    "d_model": 32,
    "d_ff": 64,
    "d_kv": 8,
    "n_heads": 4,
    "n_layers": 1,
    "n_decoder_layers": 1,
    "n_temporal_layers": 1,
    "n_temporal_heads": 4,
    "dropout": 0.0,
    "temporal_conv": 3,
}


def torchrun_two(*args: str) -> subprocess.CompletedProcess:
    """``torchrun`` with 2 processes on this machine (one thread each) running
    ``args``; fails the test with the end of stderr when the job fails."""
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", *args],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def save_tiny_clip(
    path: Path,
    *,
    width: int = 32,
    layers: int = 2,
    image_size: int = 32,
    projection_dim: int | None = None,
) -> Path:
    """A randomly initialised CLIP vision tower saved where a hub name would be
    loaded from (nothing downloads): with ``projection_dim``, the model with the
    image projection that the clip extractor reads; else the tower alone, as the
    end-to-end visual encoder reads it."""
    from transformers import (
        CLIPVisionConfig,
        CLIPVisionModel,
        CLIPVisionModelWithProjection,
    )

    config = CLIPVisionConfig(
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=layers,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=8,
        **({"projection_dim": projection_dim} if projection_dim else {}),
    )
    model = CLIPVisionModelWithProjection if projection_dim else CLIPVisionModel
    model(config).save_pretrained(path)
    return path

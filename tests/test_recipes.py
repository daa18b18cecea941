"""The dataset recipes (configs/anet_*.yaml, configs/yc2_*.yaml): they load as run
configs with the settings they claim, and each runs end to end on the CPU on
stand-in data with the dataset's real ids (bench/recipe_smoke.py)."""

import sys
from pathlib import Path

import pytest

from densevid.training import load_config

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted(ROOT.glob("configs/anet_*.yaml")) + sorted(
    ROOT.glob("configs/yc2_*.yaml")
)
SHARED = ROOT.parent / "shared" / "data"


def test_there_are_recipes_for_both_datasets():
    names = {p.stem for p in RECIPES}
    assert {"anet_clip", "yc2_clip", "anet_tsp", "anet_bmt"} <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_loads_with_vid2seqs_settings(recipe):
    cfg = load_config(recipe).verify()
    m = cfg.model
    assert m.lm == "google/t5-v1_1-base" and cfg.tokenizer == m.lm
    assert (m.n_frames, m.n_time_tokens) == (100, 100)
    assert (cfg.lr, cfg.batch_size, cfg.weight_decay) == (3e-4, 32, 0.0)
    assert cfg.warmup_steps == cfg.max_steps // 10  # warm-up over a tenth
    assert (cfg.decoding.method, cfg.decoding.beam_size) == ("beam", 4)
    if recipe.stem.endswith("clip"):
        assert m.visual_features == "clip" and m.speech_features == "asr"
    if recipe.stem == "anet_bmt":
        assert m.visual_streams == ["i3d_rgb", "i3d_flow"]
        assert m.audio_features == "vggish"


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data for real ids")
@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_smoke_run_on_stand_in_data(recipe, tmp_path, one_torch_thread):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from recipe_smoke import smoke
    finally:
        sys.path.pop(0)
    result = smoke(recipe, tmp_path, n_videos=4)
    assert result["steps"] == 2
    assert 0.0 <= result["F1"] <= 1.0
    released = {"anet_tsp": ["tsp"], "anet_bmt": ["i3d_flow", "i3d_rgb", "vggish"]}
    assert result["imported"] == released.get(recipe.stem, [])  # via densevid import

"""End to end: a visual encoder over raw frames trained with the captioner. The
``frames`` stream, gradients reaching the encoder's first layer (all frames, a
sparse subset, with checkpointing), training, checkpoints, warm start from a
frozen-feature model and captioning a video file with no feature cache."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from densevid.checkpoint import init_model, load_model, save_model
from densevid.cli import main
from densevid.config import ModelConfig
from densevid.errors import DensevidError
from densevid.events import Event, VideoEvents, load_submission, save_annotations
from densevid.features import get_extractor
from densevid.features.cache import save_features
from densevid.features.frames import FramesConfig, group_rows, mirror_frame_rows
from densevid.inputs import collate
from densevid.model import build_model
from densevid.text import train_tokenizer
from densevid.training import TrainConfig, train
from densevid.training.losses import compute_loss
from densevid.visual_encoder import FrameCNN, FrameEncoder
from helpers import TINY_LM, save_tiny_clip
from test_features_extract import make_video

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FRAMES = FramesConfig(fps=2.0, size=8, substeps=2)
CAPTIONS = ["a red square appears", "a green square moves left", "a blue dot grows"]
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
TINY_FRAMES = {
    **TINY_LM,
    "visual_features": "frames",
    "encoder_width": 4,
    "encoder_dim": 16,
    "n_time_tokens": 20,
    "n_frames": 8,
    "max_target_tokens": 32,
}


def make_frames_corpus(root: Path, n_videos: int = 6) -> Path:
    """Tiny ``frames`` streams: a square of caption k's colour while its event runs."""
    rng = np.random.default_rng(0)
    videos = []
    for i in range(n_videos):
        duration, k = float(rng.uniform(6, 10)), i % 3
        start = float(rng.uniform(0, duration / 2))
        end = float(rng.uniform(start + 1, duration))
        n_rows = int(duration * FRAMES.fps)
        times = np.arange(n_rows) / FRAMES.fps
        frames = rng.integers(0, 40, (n_rows * FRAMES.substeps, 8, 8, 3), np.uint8)
        on = np.repeat((times >= start) & (times <= end), FRAMES.substeps)
        frames[on, 2:6, 2:6] = COLOURS[k]
        meta = {"fps": FRAMES.fps, "duration": duration, "timestamps": times}
        meta["layout"] = FRAMES.layout()
        rows = group_rows(frames, FRAMES.substeps)
        save_features(root / "features", "frames", f"v{i}", rows, meta)
        videos.append(VideoEvents(f"v{i}", (Event(start, end, CAPTIONS[k]),), duration))
    save_annotations(videos, root / "train.json")
    save_annotations(videos[:3], root / "val.json")
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_frames_corpus(tmp_path_factory.mktemp("frames"))


def frames_config(root: Path, out: str, **kw) -> TrainConfig:
    base = dict(
        train_annotations=str(root / "train.json"),
        val_annotations=[str(root / "val.json")],
        features=str(root / "features"),
        output_dir=str(root / out),
        model=dict(TINY_FRAMES),
        vocab_size=100,
        max_steps=4,
        batch_size=2,
        lr=3e-3,
        warmup_steps=1,
        eval_every=0,
        save_every=4,
        log_every=0,
        val_metrics=[],
        best_metric="log_likelihood",
        val_batch_size=4,
        seed=0,
        device="cpu",
        hflip=0.5,
        concat=0.5,
    )
    base.update(kw)
    return TrainConfig.from_dict(base)


def tiny_model(shape=(2, 8, 8, 3), **kw):
    torch.manual_seed(0)
    tok = train_tokenizer(CAPTIONS * 3, vocab_size=100, n_time_tokens=20)
    config = ModelConfig(**{**TINY_FRAMES, "frame_shape": list(shape), **kw})
    return build_model(config, tok)


def batch_of(model, n_videos: int = 2) -> dict:
    rng = np.random.default_rng(1)
    dim = int(np.prod(model.config.frame_shape))
    tt = model.time_tokenizer
    items = []
    for i in range(n_videos):
        events = [Event(1.0, 3.0, CAPTIONS[i % 3])]
        items.append(
            {
                "video_id": f"v{i}",
                "duration": 5.0,
                "visual": rng.integers(0, 255, (8 - i, dim), np.uint8),
                "labels": tt.encode_events(events, 5.0, max_length=32),
            }
        )
    return collate(items, tt.pad_id)


@pytest.mark.parametrize(
    ("in_backward", "checkpointing"), [(0, False), (3, False), (3, True)]
)
def test_gradients_reach_the_encoders_first_layer(in_backward, checkpointing):
    model = tiny_model().train()
    model.frame_encoder.frames_in_backward = in_backward
    model.frame_encoder.checkpointing = checkpointing
    batch = batch_of(model)
    assert batch["visual"].dtype == torch.uint8
    loss, _ = compute_loss(model, batch, 0.1)
    loss.backward()
    first = model.frame_encoder.net.first_layer
    assert isinstance(first, torch.nn.Conv2d) and first.in_channels == 2 * 3
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0


def test_a_sparse_backward_encodes_the_same_and_keeps_k_frames_per_video():
    torch.manual_seed(0)
    enc = FrameEncoder(FrameCNN([2, 8, 8, 3], 4, 16)).train()
    rows = torch.randint(0, 255, (3, 6, 2 * 8 * 8 * 3), dtype=torch.uint8)
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[2, 4:] = False  # a shorter video: padding is never picked nor encoded
    full = enc(rows, mask)
    enc.frames_in_backward = 2
    sparse = enc(rows, mask)
    torch.testing.assert_close(sparse, full)
    assert (sparse[2, 4:] == 0).all()
    calls = []  # rows encoded with gradients: k per video
    encode = enc._embed
    enc._embed = lambda rows: (calls.append(len(rows)), encode(rows))[1]
    enc(rows, mask).sum().backward()
    assert calls == [2 * 3]
    assert enc.net.first_layer.weight.grad.abs().sum() > 0
    calls.clear()
    enc.requires_grad_(False)  # frozen (encoder_lr_ratio 0): nothing kept
    enc(rows, mask)
    assert calls == []
    enc.requires_grad_(True)
    with torch.no_grad():  # inference: everything encoded, nothing kept
        torch.testing.assert_close(enc.eval()(rows, mask), full)


def test_frames_stream_from_a_video_and_its_mirror(tmp_path):
    video = make_video(tmp_path / "v.mp4", 2.0, audio_hz=None)
    result = get_extractor("frames", fps=2.0, size=8, substeps=2)(video)
    assert result.array.dtype == np.uint8
    assert result.array.shape == (4, 2 * 8 * 8 * 3)
    assert result.meta["layout"]["frames"]["shape"] == [2, 8, 8, 3]
    assert result.meta["timestamps"][:2] == pytest.approx([0.0, 0.5], abs=0.02)
    mirrored = mirror_frame_rows(result.array, [2, 8, 8, 3])
    x = result.array.reshape(4, 2, 8, 8, 3)
    assert np.array_equal(mirrored.reshape(4, 2, 8, 8, 3), x[:, :, :, ::-1])
    assert np.array_equal(mirror_frame_rows(mirrored, [2, 8, 8, 3]), result.array)


def test_training_saves_a_frames_model_that_loads_and_predicts_alike(corpus):
    cfg = frames_config(corpus, "run", frames_in_backward=3, encoder_lr_ratio=0.5)
    summary = train(cfg)
    assert summary["step"] == 4 and np.isfinite(summary["final_loss"])
    model = load_model(Path(cfg.output_dir) / "last")
    assert model.config.reads_frames and model.config.frame_shape == [2, 8, 8, 3]
    assert model.config.visual_dim == 16 and model.config.domain_stats == {}
    again = load_model(Path(cfg.output_dir) / "last")
    batch = batch_of(model)
    with torch.no_grad():
        a = model(
            batch["labels"], visual=batch["visual"], visual_mask=batch["visual_mask"]
        )
        b = again(
            batch["labels"], visual=batch["visual"], visual_mask=batch["visual_mask"]
        )
    torch.testing.assert_close(a, b)
    # the encoder trained at half the learning rate, in groups of its own
    state = json.loads((Path(cfg.output_dir) / "last/training_state.json").read_text())
    assert state["step"] == 4


def test_data_loader_workers_build_the_same_steps(corpus):
    losses: dict[int, list[float]] = {0: [], 1: []}
    for workers in (0, 1):
        cfg = frames_config(corpus, f"workers{workers}", num_workers=workers)
        cfg = replace(cfg, save_every=0, grad_accum=2, max_steps=3)
        train(cfg, on_step=lambda step, logs, w=workers: losses[w].append(logs["loss"]))
    assert losses[0] == pytest.approx(losses[1], rel=1e-6) and len(losses[0]) == 3


def test_warm_start_from_a_frozen_feature_checkpoint(tmp_path):
    tok = train_tokenizer(CAPTIONS * 3, vocab_size=100, n_time_tokens=20)
    torch.manual_seed(0)
    features = ModelConfig(
        **{**TINY_FRAMES, "visual_features": "pixels", "visual_dim": 6},
        standardize=True,
        visual_blocks=["blobs"],
    )
    source = build_model(features, tok)
    save_model(source, tmp_path / "frozen")
    frames = ModelConfig(**TINY_FRAMES, frame_shape=[2, 8, 8, 3])
    model = init_model(tmp_path / "frozen", frames)
    assert model.config.reads_frames and not model.config.standardize
    src, new = source.state_dict(), model.state_dict()
    for name in ("visual.pos", "visual.conv.0.weight", "lm.lm_head.weight"):
        torch.testing.assert_close(new[name], src[name])
    # the input layer reads the encoder's 16-d embeddings now, not 6-d features
    assert new["visual.proj.weight"].shape[1] == 16
    assert any(k.startswith("frame_encoder.") for k in new)


def test_caption_a_video_file_with_a_frames_model(tmp_path, capsys):
    model = tiny_model()
    model.config.extractor_options = {"frames": {"fps": 2.0, "size": 8, "substeps": 2}}
    model.config.max_duration = 4.0
    save_model(model, tmp_path / "model")
    video = make_video(tmp_path / "clip.mp4", 3.0, audio_hz=None)
    out = tmp_path / "out"
    argv = ["-q", "caption", str(video), "--model", str(tmp_path / "model")]
    argv += ["-o", str(out), "--method", "greedy", "--format", "json"]
    assert main(argv) == 0, capsys.readouterr().err
    assert list(load_submission(out / "clip.json")) == ["clip"]


def test_config_errors_name_the_fix():
    with pytest.raises(DensevidError, match="set visual_features to 'frames'"):
        ModelConfig(visual_encoder="cnn")
    with pytest.raises(DensevidError, match="model.standardize=false"):
        ModelConfig(visual_features="frames", standardize=True)
    with pytest.raises(DensevidError, match="model.visual_blocks"):
        ModelConfig(visual_features="frames", visual_blocks=["blobs"])
    with pytest.raises(DensevidError, match="'cnn' or 'hf:NAME'"):
        ModelConfig(visual_features="frames", visual_encoder="resnet")
    assert ModelConfig(visual_features="frames").visual_encoder == "cnn"
    assert not ModelConfig(visual_features="frames").interpolates
    with pytest.raises(DensevidError, match="frames_in_backward"):
        TrainConfig(train_annotations="a", features="f", frames_in_backward=-1).verify()


def test_a_pretrained_clip_encoder_fine_tunes_and_loads_without_the_hub(tmp_path):
    save_tiny_clip(tmp_path / "clip", width=16, layers=1, image_size=16)
    model = tiny_model(visual_encoder=f"hf:{tmp_path / 'clip'}").train()
    assert model.config.visual_dim == 16 and model.config.encoder_config
    loss, _ = compute_loss(model, batch_of(model), 0.1)
    loss.backward()
    patch = model.frame_encoder.net.first_layer
    assert patch.weight.grad is not None and patch.weight.grad.abs().sum() > 0
    save_model(model, tmp_path / "model")
    (tmp_path / "clip" / "model.safetensors").unlink()  # no hub, no source directory
    again = load_model(tmp_path / "model")
    batch = batch_of(model)
    with torch.no_grad():
        a = model.eval()(
            batch["labels"], **{k: batch[k] for k in ("visual", "visual_mask")}
        )
        b = again(batch["labels"], **{k: batch[k] for k in ("visual", "visual_mask")})
    torch.testing.assert_close(a, b)


def test_feature_models_are_unchanged_by_the_frames_options():
    config = ModelConfig(
        **{**TINY_FRAMES, "visual_features": "pixels", "visual_dim": 6}
    )
    assert not config.reads_frames and config.input_dim == 6 and config.interpolates
    tok = train_tokenizer(CAPTIONS * 3, vocab_size=100, n_time_tokens=20)
    model = build_model(config, tok)
    assert model.frame_encoder is None
    assert not any(k.startswith("frame_encoder") for k in model.state_dict())
    assert replace(config).to_dict() == config.to_dict()


@pytest.mark.cuda
def test_frames_training_on_cuda_with_bf16_and_a_clip_encoder(corpus, tmp_path):
    """The GPU path: uint8 frames to the device, bf16 autocast, the sparse backward
    with checkpointing through a (tiny, local) CLIP tower at a lower lr."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    save_tiny_clip(tmp_path / "clip", width=32, layers=2, image_size=32)
    model = dict(TINY_FRAMES, visual_encoder=f"hf:{tmp_path / 'clip'}")
    losses: list[float] = []
    cfg = frames_config(
        corpus,
        "cuda",
        model=model,
        device="cuda",
        amp=True,
        max_steps=20,
        save_every=20,
        frames_in_backward=3,
        gradient_checkpointing=True,
        encoder_lr_ratio=0.1,
    )
    train(cfg, on_step=lambda s, m: losses.append(m["loss"]))
    assert all(np.isfinite(losses)) and np.mean(losses[-5:]) < np.mean(losses[:5])
    loaded = load_model(Path(cfg.output_dir) / "last", device="cuda")
    assert loaded.frame_encoder is not None and loaded.config.encoder_config

"""Training: data sampling, schedule, checkpoints, exact resume after a kill,
2-process DDP equal to 1 process, and the train/predict commands end to end."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from densevid.checkpoint import load_model
from densevid.cli import main
from densevid.data import crop_events, frame_event_targets
from densevid.errors import DensevidError
from densevid.events import (
    Event,
    VideoEvents,
    load_annotations,
    load_submission,
    save_annotations,
)
from densevid.features.cache import load_features, save_features
from densevid.inputs import sample_frames
from densevid.training import TrainConfig, load_config, train
from densevid.training.distributed import Dist
from densevid.training.finetune import step_indices
from densevid.training.loop import lr_factor
from helpers import TINY_LM, torchrun_two

CAPTIONS = ["a red circle appears", "the blue square moves left", "a star grows"]
DIM, ROWS = 6, 12


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_corpus(root: Path, n_videos: int = 8, seed: int = 0) -> Path:
    """Tiny features whose channel k lights up while caption k's event runs."""
    rng = np.random.default_rng(seed)
    videos = []
    for i in range(n_videos):
        duration = float(rng.uniform(8, 20))
        k = i % 3
        s = float(rng.uniform(0, duration / 2))
        e = float(rng.uniform(s + 1, duration))
        times = (np.arange(ROWS) + 0.5) * duration / ROWS
        x = rng.normal(0, 0.1, (ROWS, DIM)).astype(np.float32)
        x[(times >= s) & (times <= e), k] += 1.0
        save_features(
            root / "features",
            "pixels",
            f"v{i}",
            x,
            {"fps": ROWS / duration, "duration": duration, "timestamps": times},
        )
        videos.append(VideoEvents(f"v{i}", (Event(s, e, CAPTIONS[k]),), duration))
    save_annotations(videos, root / "train.json")
    save_annotations(videos[:4], root / "val.json")
    return root


TINY_MODEL = {
    **TINY_LM,
    "n_time_tokens": 20,
    "n_frames": 8,
    "max_target_tokens": 32,
}


def tiny_config(root: Path, out: str, **kw) -> TrainConfig:
    base = dict(
        train_annotations=str(root / "train.json"),
        val_annotations=[str(root / "val.json")],
        features=str(root / "features"),
        output_dir=str(root / out),
        model=dict(TINY_MODEL),
        vocab_size=100,
        max_steps=6,
        batch_size=2,
        lr=3e-3,
        warmup_steps=2,
        eval_every=0,
        save_every=2,
        log_every=0,
        val_metrics=[],
        best_metric="log_likelihood",
        val_batch_size=4,
        seed=1,
        device="cpu",
    )
    base.update(kw)
    return TrainConfig.from_dict(base)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def test_crop_keeps_mostly_inside_events_shifted():
    events = [Event(0, 4, "a"), Event(5, 6, "b"), Event(9, 20, "c")]
    kept = crop_events(events, 2.0, 10.0)
    # a: 2 of 4 s inside (kept, clipped); b inside; c: 1 of 11 s (dropped)
    assert [(e.start, e.end, e.text) for e in kept] == [(0, 2, "a"), (3, 4, "b")]


def test_crop_windows_widen_until_they_cut_no_event(corpus):
    from densevid.config import ModelConfig
    from densevid.data import VideoDataset, widen_to_whole_events
    from densevid.text import TimeTokenizer, train_tokenizer

    events = [Event(0, 4, "a"), Event(3, 6, "b"), Event(9, 20, "c")]
    # 5 s lies in b, which overlaps a: the start goes back to a's; 10 s lies in c
    assert widen_to_whole_events(events, 5.0, 10.0) == (0, 20)
    assert widen_to_whole_events(events, 6.0, 9.0) == (6.0, 9.0)  # cuts none
    videos = load_annotations(corpus / "train.json")
    tok = train_tokenizer(["a b"], vocab_size=60, n_time_tokens=20)
    cfg = ModelConfig(**TINY_MODEL, visual_dim=DIM)
    data = VideoDataset(
        videos, corpus / "features", cfg, TimeTokenizer(tok, 20), crop=True
    )
    windows = []
    for epoch in range(5):
        data.set_epoch(epoch)
        for i, video in enumerate(data.videos):
            start, end = data.window(i)
            windows.append((start, end, video.duration))
            for e in video.events:
                assert not (e.start < start < e.end or e.start < end < e.end)
    assert any(end - start < duration for start, end, duration in windows)


def test_concat_shows_a_video_then_another_with_both_lists_of_events(tmp_path):
    from densevid.config import ModelConfig
    from densevid.data import VideoDataset
    from densevid.text import TimeTokenizer, train_tokenizer

    corpus = make_corpus(tmp_path)
    videos = load_annotations(corpus / "train.json")
    # a 40 s video: room beside it for none, beside the others (8-20 s) for some
    times = (np.arange(ROWS) + 0.5) * 40.0 / ROWS
    meta = {"fps": ROWS / 40.0, "duration": 40.0, "timestamps": times}
    rows = np.zeros((ROWS, DIM), np.float32)
    save_features(corpus / "features", "pixels", "long", rows, meta)
    videos["long"] = VideoEvents("long", (Event(1.0, 2.0, CAPTIONS[0]),), 40.0)
    tok = train_tokenizer(CAPTIONS * 3, vocab_size=80, n_time_tokens=200)
    tt = TimeTokenizer(tok, 200)
    cfg = ModelConfig(**{**TINY_MODEL, "n_time_tokens": 200}, visual_dim=DIM)
    plain = VideoDataset(videos, corpus / "features", cfg, tt)
    data = VideoDataset(videos, corpus / "features", cfg, tt, concat=1.0)
    longest = float(data.durations.max())
    joined = 0
    for epoch in range(3):
        data.set_epoch(epoch)
        for i, video in enumerate(data.videos):
            j = data.partner(i)
            assert j == data.partner(i)  # the same item within an epoch
            item = data[i]
            if j is None:  # nothing fits beside it: the video alone
                others = np.delete(data.durations, i)
                assert others.min() > longest - video.duration
                np.testing.assert_array_equal(item["visual"], plain[i]["visual"])
                continue
            joined += 1
            other = data.videos[j]
            assert j != i and item["duration"] == video.duration + other.duration
            assert item["duration"] <= longest + 1e-6
            got = tt.decode_events(item["labels"], item["duration"])
            want = [*video.events]
            want += [Event(e.start + video.duration, e.end + video.duration, e.text)
                     for e in other.events]  # fmt: skip
            assert [e.text for e in got] == [e.text for e in want]
            bin_s = item["duration"] / 199
            for g, w in zip(got, want, strict=True):
                assert g.start == pytest.approx(w.start, abs=bin_s)
                assert g.end == pytest.approx(w.end, abs=bin_s)
            # a frame in the second part shows the other video at its own time
            f = cfg.n_frames - 1
            t = (f + 0.5) / cfg.n_frames * item["duration"] - video.duration
            stream = data._stream("pixels", other)
            alone = sample_frames(stream.array, stream.times, t, t, 1, True)
            np.testing.assert_allclose(item["visual"][f], alone[0], rtol=1e-6)
    assert joined > 0 and data.partner(len(videos) - 1) is None  # the long one
    with pytest.raises(DensevidError, match="concat"):
        VideoDataset(videos, corpus / "features", cfg, tt, concat=0.5, crop=True)
    with pytest.raises(DensevidError, match="concat"):
        TrainConfig(train_annotations="t", features="f", concat=1.5).verify()


def test_frame_event_targets_mark_events_and_soft_boundaries():
    # window [10, 20] s in 10 frames (centres 0.05 ... 0.95); event 12-16 s
    t = frame_event_targets([(12, 16), (30, 40)], 10, 20, 10)
    assert t[:, 0].tolist() == [0, 0, 1, 1, 1, 1, 0, 0, 0, 0]
    near = np.exp(-0.125)  # half a frame from the boundary
    np.testing.assert_allclose(t[1:3, 1], [near, near], rtol=1e-6)  # start at 0.2
    np.testing.assert_allclose(t[5:7, 2], [near, near], rtol=1e-6)  # end at 0.6
    assert t[0, 1] == pytest.approx(np.exp(-0.5 * 1.5**2), rel=1e-6)
    alone = frame_event_targets([(12, 16)], 10, 20, 10)
    np.testing.assert_array_equal(t, alone)  # the event outside adds nothing


def test_frame_event_loss_trains_the_frame_head(corpus):
    from densevid.data import VideoDataset
    from densevid.inputs import collate, model_inputs
    from densevid.model import build_model
    from densevid.text import train_tokenizer
    from densevid.training.losses import compute_loss

    cfg = tiny_config(corpus, "x", model=dict(TINY_MODEL, frame_events=True))
    videos = load_annotations(cfg.train_annotations)
    captions = [e.text for v in videos.values() for e in v.events]
    tok = train_tokenizer(captions, vocab_size=100, n_time_tokens=20)
    cfg.model.visual_dim = DIM
    model = build_model(cfg.model, tok)
    tt = model.time_tokenizer
    data = VideoDataset(videos, cfg.features, model.config, tt)
    batch = collate([data[0], data[1]], tt.pad_id)
    assert batch["frame_targets"].shape == (2, model.config.n_frames, 3)
    torch.manual_seed(0)
    model.eval()
    plain, _ = compute_loss(model, batch, 0.0)
    both, _ = compute_loss(model, batch, 0.0, event_loss_weight=2.0)
    _, frames = model(batch["labels"], with_frames=True, **model_inputs(batch))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        frames, batch["frame_targets"]
    )
    assert both.item() == pytest.approx(plain.item() + 2.0 * bce.item(), rel=1e-5)
    both.backward()
    assert model.frame_head.weight.grad.abs().sum() > 0


def test_soft_time_targets_spread_over_neighbouring_bins():
    from densevid.training.losses import soft_time_cross_entropy

    torch.manual_seed(0)
    logits = torch.randn(2, 4, 30)
    labels = torch.tensor([[3, 12, 17, 1], [15, 2, -100, -100]])  # times: 10..19
    plain = torch.nn.functional.cross_entropy(
        logits.reshape(-1, 30), labels.reshape(-1), ignore_index=-100,
        label_smoothing=0.1,
    )  # fmt: skip
    narrow = soft_time_cross_entropy(logits, labels, 10, 10, 1e-3, 0.1)
    assert narrow.item() == pytest.approx(plain.item(), rel=1e-6)
    # a model sure of bin 5 loses less to target bin 6 than to bin 9 when spread
    sure = torch.full((1, 1, 30), -10.0)
    sure[0, 0, 15] = 10.0
    near = soft_time_cross_entropy(sure, torch.tensor([[16]]), 10, 10, 1.0)
    far = soft_time_cross_entropy(sure, torch.tensor([[19]]), 10, 10, 1.0)
    one_hot = soft_time_cross_entropy(sure, torch.tensor([[16]]), 10, 10, 1e-3)
    assert near < far and near < one_hot
    # text tokens keep their one-hot targets
    text = torch.tensor([[3, 1]])
    assert soft_time_cross_entropy(logits[:1, :2], text, 10, 10, 2.0).item() == (
        pytest.approx(
            torch.nn.functional.cross_entropy(logits[0, :2], text[0]).item(), rel=1e-6
        )
    )


def test_hflip_mirrors_the_frames_and_swaps_left_and_right(tmp_path):
    from densevid.config import ModelConfig
    from densevid.data import VideoDataset, swap_words
    from densevid.features.pixels import BLOB_FIELDS, mirror_rows
    from densevid.text import TimeTokenizer, train_tokenizer

    assert swap_words("Left, then right; leftover.", {"left": "right"}) == (
        "Right, then left; leftover."
    )
    n = len(BLOB_FIELDS)
    layout = {"blobs": {"start": 0, "stop": n, "shape": [1, n], "fields": BLOB_FIELDS}}
    x = np.random.default_rng(0).uniform(0.1, 0.9, (ROWS, n)).astype(np.float32)
    meta = {"extractor": "pixels", "layout": layout, "duration": 10.0, "fps": 1.2}
    save_features(tmp_path / "f", "pixels", "v0", x, meta)
    save_features(tmp_path / "f", "other", "v0", x, {"duration": 10.0, "fps": 1.2})
    video = VideoEvents("v0", (Event(1, 4, "the square moves left"),), 10.0)
    tok = train_tokenizer(["the square moves left", "right"] * 4, vocab_size=80)
    tt = TimeTokenizer(tok, 100)
    cfg = ModelConfig(visual_dim=n, n_frames=ROWS)
    data = VideoDataset({"v0": video}, tmp_path / "f", cfg, tt, hflip=1.0,
                        hflip_words={"left": "right"})  # fmt: skip
    item = data[0]
    np.testing.assert_allclose(item["visual"], mirror_rows(x, layout))
    assert tt.decode_events(item["labels"], 10.0)[0].text == "the square moves right"
    plain = VideoDataset({"v0": video}, tmp_path / "f", cfg, tt)[0]
    np.testing.assert_allclose(plain["visual"], x, rtol=1e-6)
    # interpolated frames blend the mirrored rows: slot 1 of 2 * ROWS stands a
    # quarter of the way from row 0 to row 1
    cfg_blend = ModelConfig(visual_dim=n, n_frames=2 * ROWS, interpolate_frames=True)
    blended = VideoDataset({"v0": video}, tmp_path / "f", cfg_blend, tt, hflip=1.0,
                           hflip_words={"left": "right"})[0]["visual"]  # fmt: skip
    m = mirror_rows(x, layout)
    assert blended.shape == (2 * ROWS, n)
    np.testing.assert_allclose(blended[1], 0.75 * m[0] + 0.25 * m[1], rtol=1e-6)
    cfg_other = ModelConfig(visual_dim=n, n_frames=ROWS, visual_features="other")
    other = VideoDataset({"v0": video}, tmp_path / "f", cfg_other, tt, hflip=0.5)
    with pytest.raises(DensevidError, match="hflip needs pixels features"):
        other[0]


def test_standardize_stores_the_training_features_mean_and_std(corpus, tmp_path):
    from densevid.checkpoint import load_model
    from densevid.data import feature_stats
    from densevid.features.cache import load_features

    a, b = np.array([[1.0, 5.0], [3.0, 5.0]]), np.array([[2.0, 5.0]])
    mean, std = feature_stats([a, b])
    np.testing.assert_allclose(mean, [2.0, 5.0])
    np.testing.assert_allclose(std, [np.sqrt(2 / 3), 1e-3], rtol=1e-6)  # floored

    cfg = tiny_config(
        corpus, "std", max_steps=2, model=dict(TINY_MODEL, standardize=True)
    )
    train(cfg)
    model = load_model(Path(cfg.output_dir) / "last")
    rows = [load_features(corpus / "features", "pixels", f"v{i}")[0] for i in range(8)]
    want_mean, want_std = feature_stats(rows)
    enc = model.visual
    np.testing.assert_allclose(enc.in_mean.numpy(), want_mean, rtol=1e-5)
    np.testing.assert_allclose(enc.in_std.numpy(), want_std, rtol=1e-5)
    # the encoder reads (x - mean) / std: as if fed standardised features
    x, mask = torch.randn(1, 8, DIM), torch.ones(1, 8, dtype=torch.bool)
    with torch.no_grad():
        got = enc.eval()(x, mask)
        enc.standardize = False
        plain = enc((x - enc.in_mean) / enc.in_std, mask)
    torch.testing.assert_close(got, plain)


def test_validation_with_meteor_needs_no_java(corpus, monkeypatch):
    monkeypatch.setenv("DENSEVID_JAVA", str(corpus / "no-java-here"))
    cfg = tiny_config(corpus, "no_java", max_steps=2, val_metrics=["F1", "METEOR"])
    summary = train(cfg)
    assert {"F1", "METEOR"} <= set(summary["val"])


def test_lr_schedule_warmup_then_cosine():
    assert lr_factor(0, 10, 110, 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 10, 110, 0.1) == pytest.approx(1.0)
    assert lr_factor(60, 10, 110, 0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(110, 10, 110, 0.1) == pytest.approx(0.1)


def test_step_indices_split_one_permutation_across_ranks_and_micro_batches(corpus):
    one = tiny_config(corpus, "x", grad_accum=2)
    two = tiny_config(corpus, "x", grad_accum=1)
    for step in range(5):
        single = step_indices(8, step, one, Dist())
        ranks = [step_indices(8, step, two, Dist(r, 2)) for r in range(2)]
        assert single == [ranks[0][0], ranks[1][0]]
    epoch0 = sum((step_indices(8, s, one, Dist())[0] for s in range(2)), [])
    epoch0 += sum((step_indices(8, s, one, Dist())[1] for s in range(2)), [])
    assert sorted(epoch0) == list(range(8))


def test_config_overrides_and_errors(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train_annotations: a.json\nfeatures: f\nmodel:\n  d_model: 64\n")
    cfg = load_config(
        path, ["model.n_frames=50", "lr=3e-4", "val_annotations=[x.json]"]
    )
    assert cfg.model.d_model == 64 and cfg.model.n_frames == 50
    assert cfg.lr == 3e-4 and cfg.val_annotations == ["x.json"]
    from densevid.errors import DensevidError

    with pytest.raises(DensevidError, match="unknown keys"):
        load_config(path, ["max_step=3"])
    with pytest.raises(DensevidError, match="batch_size"):
        load_config(path, ["batch_size=0"]).verify()
    with pytest.raises(DensevidError, match="time_sigma"):
        load_config(path, ["time_sigma=-1"]).verify()
    for bad in ("ema=1", "ema=-0.1"):
        with pytest.raises(DensevidError, match="ema"):
            load_config(path, [bad]).verify()


def test_validation_decoding_is_a_section_and_old_keys_still_read(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train_annotations: a.json\nfeatures: f\n")
    cfg = load_config(path, ["decoding.method=beam", "decoding.eos_bias=-1"])
    assert cfg.decoding.method == "beam" and cfg.decoding.eos_bias == -1.0
    assert load_config(path).decoding.method == "greedy"  # validation's default
    # configs written before the section existed
    old = load_config(path, ["val_method=beam", "val_beam_size=2"])
    assert (old.decoding.method, old.decoding.beam_size) == ("beam", 2)
    with pytest.raises(DensevidError, match="train config: decoding: unknown keys"):
        load_config(path, ["decoding.beams=3"])
    with pytest.raises(DensevidError, match="train config: decoding: decoding method"):
        load_config(path, ["decoding.method=sample"]).verify()
    saved = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert saved.decoding == cfg.decoding  # the run's config.json reads back


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(ckpt / "model.safetensors"))


def test_training_lowers_loss_and_writes_checkpoints(corpus):
    losses = []
    cfg = tiny_config(corpus, "run", max_steps=30, save_every=10, eval_every=15)
    summary = train(cfg, on_step=lambda s, m: losses.append(m["loss"]))
    out = Path(cfg.output_dir)
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    for name in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "training_state.json",
        "training_state.safetensors",
    ]:
        assert (out / "last" / name).is_file(), name
    assert (out / "best" / "model.safetensors").is_file()
    state = json.loads((out / "last" / "training_state.json").read_text())
    assert state["step"] == 30 and state["best_metric"] == "log_likelihood"
    # the likelihood is reported and is a log-probability
    val = summary["val"]
    assert val["log_likelihood"] < 0
    assert val["perplexity"] == pytest.approx(math.exp(-val["log_likelihood"]))
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "val" in r] == [15, 30]


def add_two_streams(root: Path) -> None:
    """Each video's pixels rows split into two streams at other rates: ``rgb`` (the
    first 4 dims, every row) and ``flow`` (the last 2 dims, every second row)."""
    for vid in load_annotations(root / "train.json"):
        array, meta = load_features(root / "features", "pixels", vid)
        times = np.asarray(meta["timestamps"])
        for name, cols, rows in (
            ("rgb", slice(0, 4), slice(None)),
            ("flow", slice(4, 6), slice(0, None, 2)),
        ):
            m = dict(meta, timestamps=times[rows].tolist())
            save_features(root / "features", name, vid, array[rows, cols], m)


@pytest.mark.parametrize("fusion", ["concat", "sum"])
def test_a_model_reads_several_visual_streams(corpus, fusion, tmp_path):
    add_two_streams(corpus)
    model = dict(TINY_MODEL, visual_features=["rgb", "flow"], visual_fusion=fusion)
    cfg = tiny_config(corpus, f"two_{fusion}", model=model, max_steps=4)
    train(cfg)
    trained = load_model(Path(cfg.output_dir) / "last")
    assert trained.config.visual_features == "rgb,flow"
    assert trained.config.visual_dim == 6 and trained.config.visual_stream_dims == [
        4,
        2,
    ]
    per_stream = any("in_norm.norms.1" in k for k in trained.state_dict())
    assert per_stream == (fusion == "sum")
    assert set(trained.config.extractor_options) == {"rgb", "flow"}
    preds = tmp_path / "preds.json"
    argv = ["predict", str(Path(cfg.output_dir) / "last"), "--features"]
    argv += [str(corpus / "features"), "--annotations", str(corpus / "val.json")]
    assert main([*argv, "-o", str(preds), "--method", "greedy"]) == 0
    refs = load_annotations(corpus / "val.json")
    assert set(load_submission(preds)) == set(refs)
    # captions for the reference segments ("ground-truth proposals")
    captions = tmp_path / "captions.json"
    segments = ["--segments", str(corpus / "val.json")]
    assert main([*argv, "-o", str(captions), *segments]) == 0
    got = load_submission(captions)
    for vid, ref in refs.items():
        spans = sorted((e.start, e.end) for e in ref.events)
        assert [(e.start, e.end) for e in got[vid].events] == spans


def test_caption_reads_features_densevid_cannot_compute_from_a_directory(
    corpus, tmp_path, capsys
):
    from test_features_extract import make_video

    for vid in load_annotations(corpus / "train.json"):  # "tsp": not an extractor
        array, meta = load_features(corpus / "features", "pixels", vid)
        save_features(corpus / "features", "tsp", vid, array, meta)
    model = dict(TINY_MODEL, visual_features="tsp")
    cfg = tiny_config(corpus, "tsp", model=model, max_steps=2)
    train(cfg)
    video = make_video(tmp_path / "clip.mp4", seconds=4.0)
    argv = ["caption", str(video), "--model", str(Path(cfg.output_dir) / "last")]
    argv += ["-o", str(tmp_path / "out"), "--method", "greedy", "--format", "json"]
    assert main(["-q", *argv]) == 3
    err = capsys.readouterr().err
    assert "the model reads 'tsp' features, which densevid cannot compute" in err
    feats = tmp_path / "feats"
    times = np.arange(8) * 0.5 + 0.25
    rows = np.zeros((8, DIM), np.float32)
    meta = {"fps": 2.0, "duration": 4.0, "timestamps": times}
    save_features(feats, "tsp", "clip", rows, meta)
    assert main(["-q", *argv, "--features", str(feats)]) == 0
    assert (tmp_path / "out" / "clip.json").is_file()


def test_several_streams_refuse_what_reads_one(tmp_path):
    from densevid.config import ModelConfig

    with pytest.raises(DensevidError, match="visual_blocks selects blocks of one"):
        ModelConfig(visual_features="a,b", visual_blocks=["rgb"])
    with pytest.raises(DensevidError, match="visual_fusion must be one of"):
        ModelConfig(visual_fusion="max")


KILL_SCRIPT = """
import os, signal, sys
from densevid.training import TrainConfig, train
cfg = TrainConfig.from_dict(__import__("json").loads(sys.argv[1]))
def on_step(step, metrics):
    if step == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)
train(cfg, on_step=on_step)
"""


def test_resume_after_kill_continues_the_same_run(corpus):
    """Kill a run between checkpoints, resume it, and compare with an unbroken run."""
    kw = dict(max_steps=8, save_every=3, model={**TINY_MODEL, "dropout": 0.1})
    full = tiny_config(corpus, "full", **kw)
    train(full)
    broken = tiny_config(corpus, "broken", **kw)
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).parents[1] / "src"),
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, json.dumps(broken.to_dict()), "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    state = json.loads(
        (Path(broken.output_dir) / "last/training_state.json").read_text()
    )
    assert state["step"] == 3  # steps 4-5 were lost with the process
    summary = train(tiny_config(corpus, "broken", **kw))
    assert summary["resumed_from"] == 3
    a = _weights(Path(full.output_dir) / "last")
    b = _weights(Path(broken.output_dir) / "last")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_weight_average_follows_the_decay_and_swaps_in_and_out():
    from densevid.training.state import WeightAverage

    layer = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.0)
    average = WeightAverage(layer, decay=0.5)
    with torch.no_grad():
        layer.weight.fill_(4.0)
    average.update(layer, step=100)  # ramp (101 / 110) above 0.5: decay 0.5
    assert average.shadow["weight"].item() == pytest.approx(2.0)
    average.update(layer, step=0)  # ramp 1 / 10: mostly the new weight
    assert average.shadow["weight"].item() == pytest.approx(0.1 * 2.0 + 0.9 * 4.0)
    with average.applied(layer):
        assert layer.weight.item() == pytest.approx(3.8)
    assert layer.weight.item() == 4.0


def test_weight_average_is_saved_as_best_and_resumed_exactly(corpus):
    kw = dict(max_steps=6, save_every=2, ema=0.8, model={**TINY_MODEL, "dropout": 0.1})
    full = tiny_config(corpus, "ema_full", **kw)
    train(full)
    broken = tiny_config(corpus, "ema_broken", **kw)

    def crash(step: int, _: dict) -> None:
        if step == 5:
            raise KeyboardInterrupt  # after the checkpoint of step 4

    with pytest.raises(KeyboardInterrupt):
        train(broken, on_step=crash)
    assert train(tiny_config(corpus, "ema_broken", **kw))["resumed_from"] == 4
    for name in ("last", "best"):
        a = _weights(Path(full.output_dir) / name)
        b = _weights(Path(broken.output_dir) / name)
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    # best holds the average (what was validated), last the raw weights
    raw, best = (_weights(Path(full.output_dir) / n) for n in ("last", "best"))
    assert any(not torch.equal(raw[k], best[k]) for k in raw)
    # a run without the average cannot continue as one with it
    train(tiny_config(corpus, "no_ema", max_steps=2))
    with pytest.raises(DensevidError, match="weight average"):
        train(tiny_config(corpus, "no_ema", max_steps=4, ema=0.8))


def test_two_processes_match_one(corpus, tmp_path):
    """torchrun with 2 gloo processes x 1 micro-batch == 1 process x 2 micro-batches."""
    kw = dict(max_steps=4, save_every=0, val_annotations=[])
    one = tiny_config(corpus, "one", grad_accum=2, **kw)
    train(one)
    two = tiny_config(corpus, "two", grad_accum=1, **kw)
    config = tmp_path / "two.yaml"
    config.write_text(json.dumps(two.to_dict()))  # JSON is YAML
    torchrun_two("-m", "densevid", "-q", "train", "--config", str(config))
    a = _weights(Path(one.output_dir) / "last")
    b = _weights(Path(two.output_dir) / "last")
    d = TINY_MODEL["d_model"]
    for key in a:
        x, y = a[key], b[key]
        if key.endswith("in_proj_bias"):
            # the key bias cancels in the softmax: its true gradient is 0, so Adam
            # turns float noise into full-size steps; q and v biases must match
            x, y = torch.cat([x[:d], x[2 * d :]]), torch.cat([y[:d], y[2 * d :]])
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6, msg=key)


RANKS_RNG_SCRIPT = """
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from densevid.training.distributed import Dist, gather_rng_states
from densevid.training.state import load_training_state, save_training_state

dist.init_process_group("gloo")
rank = dist.get_rank()
where = Path(sys.argv[1])
torch.manual_seed(100 + rank)
np.random.seed(200 + rank)
torch.rand(3)
model = torch.nn.Linear(2, 2)
opt = torch.optim.AdamW(model.parameters())
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
ranks_rng = gather_rng_states(Dist(rank, 2, rank))
if rank == 0:
    (where / "new").mkdir()
    (where / "old").mkdir()
    save_training_state(where / "new", opt, sched, 7, {}, None, ranks_rng)
    save_training_state(where / "old", opt, sched, 7, {})  # before rng_ranks
want = (torch.rand(5), np.random.rand(5))  # what each rank draws next
dist.barrier()
torch.manual_seed(0)  # as a fresh process would be
np.random.seed(0)
state = load_training_state(where / "new", opt, sched, rank=rank)
assert state["rng_restored"] and state["step"] == 7
got = (torch.rand(5), np.random.rand(5))
assert torch.equal(got[0], want[0]) and np.array_equal(got[1], want[1]), rank
drawn = [None, None]
dist.all_gather_object(drawn, want[0])
assert not torch.equal(drawn[0], drawn[1])  # each rank had its own state
old = load_training_state(where / "old", opt, sched, rank=rank)
assert old["rng_restored"] == (rank == 0)  # the caller re-derives the others
dist.barrier()  # no rank leaves the group while the other still uses it
dist.destroy_process_group()
(where / f"ok{rank}").touch()
"""


def test_every_ranks_rng_is_saved_and_restored(tmp_path):
    """A checkpoint of a 2-process run brings each rank's RNG back (dropout goes on
    as if unbroken), not only rank 0's."""
    script = tmp_path / "ranks_rng.py"
    script.write_text(RANKS_RNG_SCRIPT)
    torchrun_two(str(script), str(tmp_path))
    assert (tmp_path / "ok0").is_file() and (tmp_path / "ok1").is_file()


@pytest.mark.cuda
def test_bf16_training_on_cuda_learns_saves_and_resumes(corpus):
    """The GPU path: bf16 autocast, float32 checkpoints, resume after a crash."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    cpu_losses: list[float] = []
    gpu_losses: list[float] = []
    train(
        tiny_config(corpus, "fp32_cpu", max_steps=1),
        on_step=lambda s, m: cpu_losses.append(m["loss"]),
    )
    kw = dict(device="cuda", amp=True, max_steps=30, save_every=10, eval_every=15)
    summary = train(
        tiny_config(corpus, "bf16_gpu", **kw),
        on_step=lambda s, m: gpu_losses.append(m["loss"]),
    )
    # the same function up to bf16 rounding at step 1, and it learns
    assert gpu_losses[0] == pytest.approx(cpu_losses[0], rel=0.02)
    assert np.mean(gpu_losses[-5:]) < 0.7 * np.mean(gpu_losses[:5])
    assert summary["val"]["log_likelihood"] < 0
    full = _weights(corpus / "bf16_gpu" / "last")
    assert all(w.dtype == torch.float32 for w in full.values())  # not bf16 copies

    def crash(step: int, _: dict) -> None:
        if step == 25:
            raise KeyboardInterrupt  # after the checkpoint of step 20

    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(corpus, "bf16_broken", **kw), on_step=crash)
    assert train(tiny_config(corpus, "bf16_broken", **kw))["resumed_from"] == 20
    resumed = _weights(corpus / "bf16_broken" / "last")
    # GPU kernels are not bitwise deterministic: equal up to 10 steps of float noise
    for key in full:
        torch.testing.assert_close(resumed[key], full[key], rtol=0, atol=2e-2, msg=key)


def test_train_and_predict_commands(corpus, tmp_path, capsys, caplog):
    cfg = tiny_config(corpus, "cli", max_steps=4)
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(cfg.to_dict()))
    assert main(["-q", "train", "--config", str(config), "--set", "max_steps=5"]) == 0
    assert (
        json.loads((Path(cfg.output_dir) / "last/training_state.json").read_text())[
            "step"
        ]
        == 5
    )
    preds = tmp_path / "preds.json"
    code = main(
        [
            "-q",
            "predict",
            str(Path(cfg.output_dir) / "best"),
            "--features",
            str(corpus / "features"),
            "--annotations",
            str(corpus / "val.json"),
            "-o",
            str(preds),
            "--method",
            "greedy",
            "--max-length",
            "16",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "perplexity" in out and "4 videos" in out
    assert set(load_submission(preds)) == {"v0", "v1", "v2", "v3"}
    # two checkpoints of the run (best and last) decode as one ensemble
    ensemble = tmp_path / "ensemble.json"
    run = Path(cfg.output_dir)
    argv = ["--features", str(corpus / "features"), "--annotations"]
    argv += [str(corpus / "val.json"), "-o", str(ensemble), "--method", "greedy"]
    assert main(["-q", "predict", str(run / "best"), str(run / "last"), *argv]) == 0
    assert set(load_submission(ensemble)) == {"v0", "v1", "v2", "v3"}
    # a video without features: one line, the others predicted, exit status 1
    extra = load_annotations(corpus / "val.json")
    extra["ghost"] = VideoEvents("ghost", (Event(1.0, 2.0, "a star grows"),), 5.0)
    save_annotations(extra.values(), tmp_path / "with_ghost.json")
    code = main(
        [
            "-q",
            "predict",
            str(Path(cfg.output_dir) / "best"),
            "--features",
            str(corpus / "features"),
            "--annotations",
            str(tmp_path / "with_ghost.json"),
            "-o",
            str(preds),
            "--method",
            "greedy",
            "--max-length",
            "16",
        ]
    )
    assert code == 1
    assert "ghost: no 'pixels' features" in capsys.readouterr().err
    assert set(load_submission(preds)) == {"v0", "v1", "v2", "v3"}
    # bad input is one line, not a traceback
    assert (
        main(
            [
                "predict",
                str(tmp_path),
                "--features",
                "f",
                "--annotations",
                str(corpus / "val.json"),
                "-o",
                str(preds),
            ]
        )
        == 2
    )
    assert "not a checkpoint" in capsys.readouterr().err
    # features made with other extractor options than the model's: named, and an
    # error only where they change what the model reads
    other = tmp_path / "other"
    shutil.copytree(corpus / "features", other)
    for js in (other / "pixels").glob("*.json"):
        meta = json.loads(js.read_text())
        meta["config"] = {"tint": True}
        js.write_text(json.dumps(meta))
    argv = ["predict", str(run / "best"), "--features", str(other), "--annotations"]
    argv += [str(corpus / "val.json"), "-o", str(preds), "--method", "greedy"]
    with caplog.at_level("WARNING"):
        assert main(argv) == 0
    assert "tint: True in the features, False for the model" in caplog.text
    for npy in (other / "pixels").glob("*.npy"):
        np.save(npy, np.load(npy)[:, :-1])
        meta = json.loads(npy.with_suffix(".json").read_text())
        meta["dim"] -= 1
        npy.with_suffix(".json").write_text(json.dumps(meta))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "tint: True in the features" in err and "extract the videos again" in err


def test_shipped_configs_load_and_pretraining_matches_the_synthetic_model():
    """The README's commands start from these files; --init needs the same model."""
    from pathlib import Path

    from densevid.training import load_config, load_pretrain_config

    root = Path(__file__).resolve().parents[1] / "configs"
    train = load_config(root / "synthetic.yaml")
    train.verify()
    pre = load_pretrain_config(root / "pretrain_synthetic.yaml")
    for f in (
        "d_model",
        "n_layers",
        "n_frames",
        "n_time_tokens",
        "temporal_conv",
        "visual_features",
    ):
        assert getattr(pre.model, f) == getattr(train.model, f), f
    assert pre.model.visual_blocks == train.model.visual_blocks == ["blobs"]
    assert pre.model.time_pointer and train.model.time_pointer
    assert pre.model.frame_events and train.model.frame_events
    assert pre.model.standardize and train.model.standardize

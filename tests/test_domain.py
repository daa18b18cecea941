"""Videos unlike the training videos: the statistics training records, the rule's
decision, old checkpoints without them, the warning ``caption`` raises, and the
notice in the HTML report."""

import html
import json
import warnings
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from densevid import domain
from densevid.caption import CaptionOptions, caption, caption_many, check_domain
from densevid.checkpoint import load_model, save_model
from densevid.config import DecodingOptions, ModelConfig
from densevid.domain import (
    MIN_THRESHOLD,
    DomainStats,
    OutOfDomainWarning,
    check_video,
    domain_message,
    fit_domain_stats,
)
from densevid.events import Event, VideoEvents
from densevid.features import get_extractor
from densevid.model import build_model
from densevid.text import train_tokenizer
from densevid.training import train
from densevid.training.finetune import Finetune
from densevid.writers import WRITERS, WriteHTML
from helpers import TINY_LM
from test_features_extract import make_video
from test_train import DIM, make_corpus, tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PIXELS = {"fps": 2.0, "n_hues": 0}  # the blob block is slow and not needed here
GREEDY = DecodingOptions(method="greedy", max_length=20)


def fit(arrays: list[np.ndarray]) -> DomainStats:
    return fit_domain_stats(lambda i: arrays[i], len(arrays), "pixels")


def gaussian_videos(n: int, seed: int, shift: float = 0.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(shift, 1.0, (40, 16)).astype(np.float32) for _ in range(n)]


def test_the_rule_passes_videos_of_the_training_distribution_and_flags_others():
    stats = fit(gaussian_videos(200, seed=0))
    assert stats.low.shape == (16,) and np.all(stats.low < stats.high)
    assert stats.threshold >= MIN_THRESHOLD
    assert stats.train_distances["max"] <= stats.threshold
    # fresh videos of the same distribution: none flagged
    fresh = [check_video(a, stats) for a in gaussian_videos(100, seed=1)]
    assert not any(c.out_of_domain for c in fresh)
    # shifted by 4 standard deviations, a constant far value, noise ten times wider
    shifted = check_video(gaussian_videos(1, seed=2, shift=4.0)[0], stats)
    assert shifted.out_of_domain and shifted.distance > 0.3
    assert check_video(np.full((40, 16), 9.0), stats).distance == 1.0
    wide = np.random.default_rng(3).normal(0, 10, (40, 16))
    assert check_video(wide, stats).out_of_domain
    # another dimension (another extractor or options): nothing to compare
    assert check_video(np.zeros((40, 15)), stats) is None


def test_the_stored_statistics_decide_as_the_fitted_ones():
    videos = gaussian_videos(50, seed=4)
    stats = fit(videos)
    loaded = DomainStats.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert loaded.features == "pixels" and loaded.n_videos == 50
    # rounded outward to the stored digits: no training value falls outside
    assert np.all(loaded.low <= stats.low) and np.all(loaded.high >= stats.high)
    for a in [*videos, *gaussian_videos(5, seed=5, shift=3.0)]:
        assert check_video(a, loaded) == check_video(a, stats)


def test_the_ranges_come_from_spaced_rows_when_the_corpus_is_large(monkeypatch):
    monkeypatch.setattr(domain, "VALUE_BUDGET", 16 * 10 * 30)  # 10 rows per video
    stats = fit(gaussian_videos(30, seed=6))
    assert not check_video(gaussian_videos(1, seed=7)[0], stats).out_of_domain
    assert check_video(gaussian_videos(1, seed=8, shift=4.0)[0], stats).out_of_domain


def test_training_records_the_statistics_of_its_features(tmp_path):
    corpus = make_corpus(tmp_path)
    cfg = tiny_config(corpus, "run", max_steps=1, save_every=1)
    train(cfg)
    config = ModelConfig.load(Path(cfg.output_dir) / "last" / "config.json")
    stored = config.domain_stats
    assert stored["features"] == "pixels" and stored["n_videos"] == 8
    assert len(stored["low"]) == len(stored["high"]) == DIM
    ids = [f"v{i}" for i in range(8)]
    assert stored == Finetune.domain_stats(corpus / "features", "pixels", ids)
    # the training features themselves are in domain, shifted ones are not
    stats = DomainStats.from_dict(stored)
    from densevid.features.cache import load_features

    rows = load_features(corpus / "features", "pixels", "v0")[0]
    assert not check_video(rows, stats).out_of_domain
    assert check_video(rows + 5.0, stats).out_of_domain


def test_an_old_config_without_statistics_loads_and_skips_the_check(tmp_path):
    old = ModelConfig(**TINY_LM, visual_dim=DIM).to_dict()
    del old["domain_stats"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(old))
    config = ModelConfig.load(path)
    assert config.domain_stats == {}
    assert check_domain(config, {"pixels": np.full((4, DIM), 1e6)}) is None
    assert DomainStats.from_dict({"low": [0.0], "high": [1.0, 2.0]}) is None  # broken


def noise_video(path: Path, seconds: float = 3.0) -> Path:
    """Random colours every frame: nothing like a square moving on black."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=8)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for _ in range(int(seconds * 8)):
            img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            for pkt in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in stream.encode():
            out.mux(pkt)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("domain_videos")
    return {
        "square": make_video(root / "square.mp4", 3.0, audio_hz=None),
        "noise": noise_video(root / "noise.mp4"),
    }


def tiny_checkpoint(root: Path, train_videos: list[Path]) -> Path:
    """A tiny random model reading pixels whose statistics are those of
    ``train_videos``' features (none when the list is empty)."""
    extractor = get_extractor("pixels", **PIXELS)
    arrays = [np.asarray(extractor(v).array) for v in train_videos]
    torch.manual_seed(0)
    tok = train_tokenizer(["a red square moves right"] * 4, vocab_size=120)
    config = ModelConfig(
        **TINY_LM,
        n_frames=8,
        visual_dim=extractor.dim,
        extractor_options={"pixels": PIXELS},
        domain_stats=fit(arrays).to_dict() if arrays else {},
    )
    save_model(build_model(config, tok), root)
    return root


def caption_warnings(model, video: Path) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        caption(model, video, CaptionOptions(decoding=GREEDY))
    return [w for w in caught if issubclass(w.category, OutOfDomainWarning)]


def test_caption_warns_once_on_a_video_unlike_the_training_ones(videos, tmp_path):
    model = load_model(tiny_checkpoint(tmp_path / "model", [videos["square"]]))
    assert caption_warnings(model, videos["square"]) == []
    (w,) = caption_warnings(model, videos["noise"])
    assert str(w.message) == domain_message(str(videos["noise"]))
    assert "not trained on videos like this one" in str(w.message)
    assert 'docs/training.md, "For real videos"' in str(w.message)
    assert "\n" not in str(w.message)
    # a model saved before the check warns about nothing
    old = load_model(tiny_checkpoint(tmp_path / "old", []))
    assert caption_warnings(old, videos["noise"]) == []


def test_the_html_report_shows_the_notice_and_the_other_formats_do_not(tmp_path):
    video = VideoEvents("v", (Event(1.0, 2.0, "a <b> square", -0.5),), 5.0)
    notice = domain_message("cartoon & co.mp4")
    report = WriteHTML(tmp_path).format_result(video, notices=[notice])
    assert f'<p class="notice" role="alert">{html.escape(notice)}</p>' in report
    assert '<p class="notice"' not in WriteHTML(tmp_path).format_result(video)
    for fmt in ("json", "srt", "vtt", "txt"):
        writer = WRITERS[fmt](tmp_path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # chapters: fewer than three
            assert writer.format_result(video, notices=[notice]) == (
                writer.format_result(video)
            )


def test_caption_many_writes_the_notice_into_that_video_report_only(videos, tmp_path):
    model = load_model(tiny_checkpoint(tmp_path / "model", [videos["square"]]))
    out = tmp_path / "out"
    options = CaptionOptions(decoding=GREEDY)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        caption_many(model, list(videos.values()), out, options=options, verbose=False)
    ood = [w for w in caught if issubclass(w.category, OutOfDomainWarning)]
    assert [str(w.message) for w in ood] == [domain_message(str(videos["noise"]))]
    assert '<p class="notice"' in (out / "noise.html").read_text()
    assert '<p class="notice"' not in (out / "square.html").read_text()

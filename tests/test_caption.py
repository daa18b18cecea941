"""From video files to event files: windows, merging, filters, and the command on
good and bad inputs with a tiny random model."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from densevid.caption import (
    CaptionOptions,
    filter_events,
    merge_events,
    plan_windows,
)
from densevid.checkpoint import load_model, save_model
from densevid.cli import main
from densevid.config import ModelConfig
from densevid.errors import DensevidError
from densevid.events import Event, load_annotations, load_submission
from densevid.features import get_extractor
from densevid.model import build_model
from densevid.text import train_tokenizer
from helpers import TINY_LM
from test_features_extract import make_video

PIXELS = {"fps": 2.0, "n_hues": 0}  # the blob block is slow and not needed here


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny random model saved as `densevid train` saves one, reading pixels."""
    root = tmp_path_factory.mktemp("caption")
    video = make_video(root / "probe.mp4", 2.0)
    dim = get_extractor("pixels", **PIXELS)(video).array.shape[1]
    torch.manual_seed(0)
    tok = train_tokenizer(["a red square moves right"] * 4, vocab_size=120)
    config = ModelConfig(
        **TINY_LM,
        n_frames=8,
        visual_dim=dim,
        extractor_options={"pixels": PIXELS},
        max_duration=4.0,
    )
    save_model(build_model(config, tok), root / "model")
    return root / "model"


def test_windows_cover_the_video_with_overlap():
    assert plan_windows(30.0, 40.0) == [(0.0, 30.0)]
    assert plan_windows(45.0, 40.0) == [(0.0, 45.0)]  # within the overlap
    assert plan_windows(100.0, 0.0) == [(0.0, 100.0)]
    windows = plan_windows(100.0, 40.0)
    assert windows[0][0] == 0.0 and windows[-1][1] == pytest.approx(100.0)
    for (_, e0), (s1, e1) in zip(windows, windows[1:], strict=False):
        assert e1 - s1 == pytest.approx(40.0)
        assert s1 < e0 and (e0 - s1) >= 0.25 * 40.0 - 1e-9  # overlap at least 25%


def test_merge_keeps_the_best_of_duplicates():
    a = Event(10.0, 20.0, "a", -0.5)
    b = Event(11.0, 20.0, "b", -0.2)  # same event seen in another window
    c = Event(30.0, 40.0, "c", -1.0)
    assert sorted(merge_events([a, b, c]), key=lambda e: e.start) == [b, c]


def test_filters():
    events = [Event(0, 1, "short", -0.1), Event(0, 5, "ok", -0.3), Event(2, 9, "x", -2)]
    opts = CaptionOptions(min_length=2.0, score_threshold=-1.0)
    assert filter_events(events, opts, 8.0) == [Event(0, 5, "ok", -0.3)]
    best = filter_events(events, CaptionOptions(max_events=1), 8.0)
    assert best == [Event(0, 1, "short", -0.1)]
    with pytest.raises(DensevidError, match="max_events"):
        CaptionOptions(max_events=0).verify()


def test_model_caption_returns_events_inside_the_video(checkpoint, tmp_path):
    video = make_video(tmp_path / "clip.mp4", 6.0)
    model = load_model(checkpoint)
    greedy = replace(CaptionOptions().decoding, method="greedy", max_length=40)
    # max_duration 4 s: a 6 s video goes through two overlapping windows
    events = model.caption(video, CaptionOptions(decoding=greedy))
    assert events.video_id == "clip"
    assert events.duration == pytest.approx(6.0, abs=0.2)
    starts = [e.start for e in events]
    assert starts == sorted(starts)
    for e in events:
        assert 0 <= e.start < e.end <= events.duration


def test_command_writes_files_and_reports_bad_inputs(checkpoint, tmp_path, capsys):
    good = make_video(tmp_path / "good.mp4", 3.0)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    out = tmp_path / "out"
    argv = ["caption", str(good), str(empty), str(text), str(tmp_path / "nope.mp4")]
    argv += ["--model", str(checkpoint), "-o", str(out), "--method", "greedy"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 3, captured.err
    assert any("empty.mp4" in line for line in errors)
    assert any("notes.mp4" in line for line in errors)
    assert any("nope.mp4: no such file" in line for line in errors)
    assert "captioned 1 video (1 event)" in captured.out
    assert sorted(p.name for p in out.iterdir()) == [
        "good.html",
        "good.json",
        "good.srt",
        "good.vtt",
    ]
    videos = load_submission(out / "good.json")
    assert list(videos) == ["good"]
    assert json.loads((out / "good.json").read_text())["version"]


def test_unwritable_output_is_one_error(checkpoint, tmp_path, capsys):
    good = make_video(tmp_path / "good.mp4", 2.0)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    argv = ["caption", str(good), "--model", str(checkpoint), "-o", str(blocker)]
    assert main([*argv, "--method", "greedy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: {blocker}: exists and is not a directory (-o takes a folder)"
    ]


def test_missing_model_is_one_error(tmp_path, capsys):
    good = make_video(tmp_path / "good.mp4", 2.0)
    assert main(["caption", str(good), "--model", str(tmp_path / "none")]) == 2
    assert "not a checkpoint directory" in capsys.readouterr().err


SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample.mp4"


def test_bundled_default_captions_the_sample_out_of_the_box(tmp_path, capsys):
    """The README's main job: the shipped model on the shipped sample, no options."""
    from densevid.checkpoint import available_models

    assert "default" in available_models()
    out = tmp_path / "out"
    assert main(["caption", str(SAMPLE), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "sample.html",
        "sample.json",
        "sample.srt",
        "sample.vtt",
    ]
    found = load_submission(out / "sample.json")["sample"]
    refs = load_annotations(SAMPLE.with_suffix(".json"))["sample"]
    assert 0 < len(found) <= 3 * len(refs)
    for e in found:
        assert 0 <= e.start < e.end <= refs.duration + 0.1
    # it knows the synthetic world: its sentences name shapes and colours it saw
    words = {w for e in found for w in e.text.lower().rstrip(".").split()}
    assert words & {"circle", "square", "triangle", "diamond"}
    assert words & {"red", "green", "blue", "yellow", "purple"}


def test_command_with_two_models_captions_as_their_ensemble(checkpoint, tmp_path):
    """--model twice: an ensemble; of one model twice, the model's own events."""
    video = make_video(tmp_path / "clip.mp4", 3.0)
    outs = {}
    for n in (1, 2):
        out = tmp_path / f"out{n}"
        argv = ["caption", str(video), "-o", str(out), "--format", "json"]
        argv += ["--method", "greedy", *["--model", str(checkpoint)] * n]
        assert main(argv) == 0
        outs[n] = load_submission(out / "clip.json")["clip"]
    assert len(outs[1]) > 0
    # in Python: densevid.load_models, and the ensemble's caption method
    import densevid

    pair = densevid.load_models([checkpoint, checkpoint])
    greedy = replace(CaptionOptions().decoding, method="greedy")
    events = pair.caption(video, CaptionOptions(decoding=greedy))
    assert [e.text for e in events] == [e.text for e in outs[1]]
    assert [(e.start, e.end, e.text) for e in outs[2]] == [
        (e.start, e.end, e.text) for e in outs[1]
    ]


def test_two_stage_captions_the_proposal_heads_segments(checkpoint, tmp_path, capsys):
    """--two-stage: the proposal head's segments (at most --max-proposals a window),
    each captioned; refused for a model without the head, and its flags alone."""
    from densevid.config import ProposalOptions

    model = load_model(checkpoint)
    config = replace(model.config, n_proposal_anchors=2, proposal_anchors=[0.2, 0.6])
    torch.manual_seed(1)
    save_model(build_model(config, model.tokenizer), tmp_path / "two_stage")
    video = make_video(tmp_path / "clip.mp4", 3.0)  # one window (max_duration 4 s)
    out = tmp_path / "out"
    argv = ["caption", str(video), "-o", str(out), "--format", "json"]
    argv += ["--method", "greedy", "--max-length", "40"]
    assert main([*argv, "--model", str(tmp_path / "two_stage"), "--two-stage",
                 "--max-proposals", "2"]) == 0  # fmt: skip
    events = load_submission(out / "clip.json")["clip"].events
    assert 1 <= len(events) <= 2
    assert all(0 <= e.start < e.end <= 3.0 + 0.2 for e in events)
    # the same through the Python API
    two_stage = load_model(tmp_path / "two_stage")
    greedy = replace(CaptionOptions().decoding, method="greedy", max_length=40)
    proposals = ProposalOptions(max_proposals=2)
    again = two_stage.caption(video, CaptionOptions(greedy, proposals=proposals))
    assert [(e.start, e.end, e.text) for e in again] == [
        (e.start, e.end, e.text) for e in events
    ]
    capsys.readouterr()
    assert main([*argv, "--model", str(checkpoint), "--two-stage"]) == 2
    assert "n_proposal_anchors" in capsys.readouterr().err
    assert main([*argv, "--model", str(checkpoint), "--min-score", "0.3"]) == 2
    assert "add --two-stage" in capsys.readouterr().err

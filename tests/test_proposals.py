"""The two-stage baseline's proposals: anchors, targets and NMS on hand-made cases,
decoding as the inverse of the targets, the loss, and a tiny model trained with the
proposal head whose proposals ``densevid predict --two-stage`` captions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from densevid.checkpoint import load_model
from densevid.config import ProposalOptions
from densevid.data import VideoDataset
from densevid.events import load_annotations, load_submission
from densevid.inputs import collate
from densevid.metrics.densevid import tiou_matrix
from densevid.proposals import (
    anchor_lengths,
    decode_outputs,
    nms,
    proposal_loss,
    proposal_targets,
    propose,
    segment_tiou,
    select_proposals,
)
from densevid.training import train
from test_train import corpus, tiny_config  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_anchors_are_quantiles_of_the_event_lengths():
    # the 1/4 and 3/4 quantiles of 0.1 .. 0.4, interpolated linearly
    assert anchor_lengths([0.4, 0.1, 0.3, 0.2], 2) == pytest.approx([0.175, 0.325])
    assert anchor_lengths([0.2], 3) == pytest.approx([0.2] * 3)
    assert anchor_lengths([0.0, 2.0], 1) == pytest.approx([0.5005])  # clipped first


@pytest.mark.parametrize(
    "a, b",
    [((0, 10), (1, 10)), ((0, 10), (5, 15)), ((2, 3), (0, 10)), ((0, 1), (1, 2))],
)
def test_segment_tiou_matches_the_official_pairing(a, b):
    ref = tiou_matrix(np.array([a], float), np.array([b], float))[0, 0]
    assert segment_tiou(a, b) == pytest.approx(ref)


def test_targets_assign_the_anchor_at_the_centre_frame_and_ignore_near_misses():
    # 20 frames (frame j at (j + 0.5) / 20), anchors 0.2 and 0.6 of the video; the
    # event 0.32-0.52: centre 0.42 in frame 8 (centre 0.425), length 0.2 = anchor 0
    t = proposal_targets([(0.32, 0.52)], [0.2, 0.6], 20)
    assert t["objectness"].nonzero().tolist() == [[8, 0]]
    assert float(t["offset"][8, 0]) == pytest.approx(-0.1)  # 8.4 - 8.5 frames
    assert float(t["log_length"][8, 0]) == pytest.approx(0.0, abs=1e-6)
    # anchor 0 at frames 7 and 9 overlaps the event by tIoU 0.63 and 0.57: ignored;
    # frames 6 and 10 (0.36, 0.31) and anchor 1 at frame 8 (0.33) stay negatives
    ignored = (t["weight"] == 0).nonzero().tolist()
    assert ignored == [[7, 0], [9, 0]]


def test_targets_regress_centre_and_length():
    # centre 0.7 in frame 7 of 10 (centre 0.75): offset -0.5 frames; length 0.3 is
    # nearer anchor 0.4 (ratio 0.75) than 0.1 (0.33)
    t = proposal_targets([(0.55, 0.85)], [0.1, 0.4], 10)
    assert t["objectness"].nonzero().tolist() == [[7, 1]]
    assert float(t["offset"][7, 1]) == pytest.approx(-0.5)
    assert float(t["log_length"][7, 1]) == pytest.approx(math.log(0.3 / 0.4))


@pytest.mark.parametrize("order", [0, 1])
def test_two_events_on_one_anchor_keep_the_closer_fit(order):
    # both centred in frame 8 on anchor 0.2: the 0.2-long event fits it exactly, the
    # 0.06-long one by a ratio of 0.3; whichever comes first
    events = [(0.32, 0.52), (0.40, 0.46)]
    events = events if order == 0 else events[::-1]
    t = proposal_targets(events, [0.2, 0.6], 20)
    assert t["objectness"].sum() == 1
    assert float(t["log_length"][8, 0]) == pytest.approx(0.0, abs=1e-6)


def test_no_event_means_every_anchor_a_negative():
    t = proposal_targets([], [0.2, 0.6], 5)
    assert t["objectness"].sum() == 0 and bool((t["weight"] == 1).all())


def outputs_of(targets: dict[str, torch.Tensor]) -> torch.Tensor:
    """[F, K, 3] raw outputs that say exactly the targets."""
    obj = targets["objectness"] * 20 - 10
    offset = torch.logit(targets["offset"] + 0.5, eps=1e-6)
    return torch.stack([obj, offset, targets["log_length"]], -1)


def test_decoding_inverts_the_targets():
    anchors = [0.2, 0.6]
    events = [(0.12, 0.24), (0.32, 0.52)]
    out = outputs_of(proposal_targets(events, anchors, 20))
    segments, scores = decode_outputs(out, anchors, torch.ones(20, dtype=torch.bool))
    found = select_proposals(segments, scores, ProposalOptions())
    np.testing.assert_allclose(np.array(found)[:, :2], events, atol=1e-5)


def test_a_padded_frame_proposes_nothing():
    anchors = [0.2]
    out = outputs_of(proposal_targets([(0.3, 0.5)], anchors, 10))
    mask = torch.ones(10, dtype=torch.bool)
    mask[4] = False  # the event's centre frame
    segments, scores = decode_outputs(out, anchors, mask)
    assert len(scores) == 9 and scores.max() < 0.01


def test_the_loss_is_small_for_outputs_saying_the_targets():
    anchors = [0.2, 0.6]
    events = [[(0.32, 0.52)], [(0.1, 0.7), (0.8, 0.9)]]
    targets = [proposal_targets(e, anchors, 20) for e in events]
    exact = torch.stack([outputs_of(t) for t in targets])  # (2, 20, 2, 3)
    mask = torch.ones(2, 20, dtype=torch.bool)
    assert float(proposal_loss(exact, mask, events, anchors)) < 1e-3
    blank = torch.zeros_like(exact)  # probability 0.5 everywhere: 2 log 2 and more
    assert float(proposal_loss(blank, mask, events, anchors)) > 2 * math.log(2)


def test_nms_on_hand_made_segments():
    segments = np.array([[0, 10], [1, 10], [20, 30], [9, 21], [0, 10]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.9])
    # (1, 10) overlaps (0, 10) by 0.9; (9, 21) overlaps (0, 10) and (20, 30) by 1/21;
    # the second (0, 10) ties the first and comes later
    assert nms(segments, scores, 0.5) == [0, 2, 3]
    assert nms(segments, scores, 0.95) == [0, 1, 2, 3]
    assert nms(segments, scores, 1.0) == [0, 4, 1, 2, 3]
    assert nms(segments[:0], scores[:0], 0.5) == []


def test_selection_thresholds_then_suppresses_then_caps():
    segments = np.array([[0.5, 0.6], [0.0, 0.1], [0.01, 0.1], [0.3, 0.4], [0.7, 0.7]])
    scores = np.array([0.6, 0.9, 0.8, 0.2, 0.95])
    best = (0.0, 0.1, 0.9)
    options = ProposalOptions(min_score=0.5, nms_threshold=0.5, max_proposals=10)
    # the zero-length segment is dropped, (0.01, 0.1) suppressed, 0.2 below the score
    kept = select_proposals(segments, scores, options)
    np.testing.assert_allclose(kept, [(0.0, 0.1, 0.9), (0.5, 0.6, 0.6)])
    one = ProposalOptions(max_proposals=1)
    np.testing.assert_allclose(select_proposals(segments, scores, one), [best])
    # nothing reaches the score: the best one is kept anyway
    none = ProposalOptions(min_score=0.99)
    np.testing.assert_allclose(select_proposals(segments, scores, none), [best])


@pytest.mark.parametrize(
    "bad", [{"min_score": 1.5}, {"nms_threshold": 0.0}, {"max_proposals": 0}]
)
def test_bad_options_are_refused(bad):
    from densevid.errors import DensevidError

    with pytest.raises(DensevidError, match=next(iter(bad))):
        ProposalOptions(**bad).verify()


@pytest.fixture(scope="module")
def proposal_run(corpus):  # noqa: F811
    cfg = tiny_config(
        corpus,
        "proposals",
        max_steps=40,
        model={
            **tiny_config(corpus, "x").model.to_dict(),
            "n_proposal_anchors": 2,
            "frame_events": True,
        },
    )
    train(cfg)
    return Path(cfg.output_dir) / "last"


@pytest.mark.filterwarnings("ignore:.*empty sentence")
def test_two_stage_prediction_captions_the_proposals(corpus, proposal_run):  # noqa: F811
    from densevid.cli import main

    model = load_model(proposal_run)
    assert len(model.config.proposal_anchors) == 2
    out = corpus / "two_stage.json"
    args = ["-q", "predict", str(proposal_run), "--features", str(corpus / "features")]
    args += ["--annotations", str(corpus / "val.json"), "--two-stage"]
    assert main([*args, "--max-proposals", "3", "-o", str(out)]) == 0
    got = load_submission(out)
    refs = load_annotations(corpus / "val.json")
    assert set(got) == set(refs)
    for video_id, video in got.items():
        assert 1 <= len(video.events) <= 3
        for e in video.events:
            assert 0 <= e.start < e.end <= refs[video_id].duration + 1e-6
    # a model this small may babble until the sequence's length runs out, leaving
    # later proposals without words; the first of each video is captioned
    assert all(video.events[0].text for video in got.values())


def test_two_stage_refuses_what_it_cannot_do(corpus, proposal_run, capsys):  # noqa: F811
    from densevid.cli import main

    base = ["predict", str(proposal_run), "--features", str(corpus / "features")]
    base += ["--annotations", str(corpus / "val.json"), "-o", str(corpus / "x.json")]
    segments = ["--segments", str(corpus / "val.json")]
    assert main([*base, "--two-stage", *segments]) == 2
    assert "--two-stage" in capsys.readouterr().err
    assert main([*base, "--min-score", "0.3"]) == 2
    assert "--two-stage" in capsys.readouterr().err
    plain = tiny_config(corpus, "no_proposals", max_steps=2)
    train(plain)
    without = ["predict", str(Path(plain.output_dir) / "last"), *base[2:]]
    assert main([*without, "--two-stage"]) == 2
    assert "n_proposal_anchors" in capsys.readouterr().err


def test_refinement_moves_each_boundary_within_its_window(corpus, proposal_run):  # noqa: F811
    model = load_model(proposal_run)
    assert model.frame_head is not None
    videos = load_annotations(corpus / "val.json")
    data = VideoDataset(videos, corpus / "features", model.config, model.time_tokenizer)
    batch = collate([data[i] for i in range(len(data))], model.time_tokenizer.pad_id)
    plain = propose(model, batch)
    refined = propose(model, batch, refine_frames=1)
    # a boundary moves to a frame within the window, then up to half a frame more
    # (the parabola through the peak): 1.5 frames at most for a window of 1
    frame = [1.5 * v.duration / model.config.n_frames for v in videos.values()]
    for i, (a, b) in enumerate(zip(plain, refined, strict=True)):
        by_score = {p: (s, e) for s, e, p in b}
        assert sorted(by_score) == sorted(p for _, _, p in a)
        for s, e, p in a:
            s2, e2 = by_score[p]
            assert abs(s2 - s) <= frame[i] + 1e-6 and abs(e2 - e) <= frame[i] + 1e-6
    assert propose(model, batch, refine_frames=0) == plain

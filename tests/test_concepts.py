"""Semantic concepts: the vocabulary, the asymmetric loss, event windows, the
caption choice across an ensemble, and a model trained with the concept head."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from densevid.checkpoint import load_model
from densevid.concepts import (
    asymmetric_loss,
    concept_vocabulary,
    present_concepts,
    select_caption,
    window_mask,
)
from densevid.data import VideoDataset
from densevid.events import load_annotations
from densevid.inputs import collate
from densevid.training import train
from test_train import corpus, tiny_config  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_vocabulary_keeps_frequent_content_words_and_idf():
    captions = ["A man cuts an onion.", "The man cuts bread", "a dog runs"]
    concepts, idf = concept_vocabulary(captions, 3)
    assert concepts == ["cuts", "man", "bread"]  # 2, 2, then 1 alphabetically
    assert idf["man"] == pytest.approx(math.log(3 / 2))
    assert idf["dog"] == pytest.approx(math.log(3))
    assert "a" not in concepts and "the" not in concepts


def test_asymmetric_loss_spares_easy_negatives_and_punishes_misses():
    targets = torch.tensor([[1.0, 0.0, 0.0]])
    good = torch.tensor([[6.0, -6.0, -6.0]])
    base = float(asymmetric_loss(good, targets))
    easy = float(asymmetric_loss(torch.tensor([[6.0, -6.0, -3.5]]), targets))
    missed = float(asymmetric_loss(torch.tensor([[-6.0, -6.0, -6.0]]), targets))
    assert base < 0.01
    assert easy == pytest.approx(base, abs=1e-6)  # p = 0.03 < the margin: free
    assert missed > 5.0


def test_window_mask_takes_the_frames_of_each_event():
    mask = window_mask([(0.0, 5.0), (7.6, 7.7)], duration=10.0, n_frames=10)
    assert mask[0].tolist() == [True] * 5 + [False] * 5
    assert mask[1].sum() == 1 and bool(mask[1, 7])  # nearest frame: none inside


def test_selection_follows_concept_count_then_idf():
    idf = {"circle": 2.0, "red": 1.5, "moves": 0.5, "shape": 0.2, "a": 0.0}
    candidates = ["a shape moves", "a red shape moves", "a red circle"]
    assert select_caption(candidates, ["red", "circle"], idf) == 2
    assert select_caption(candidates, ["moves"], idf) == 1  # tie on count: IDF
    assert select_caption(candidates[:1] * 2, [], idf) == 0  # the first of equals
    probs = torch.tensor([0.9, 0.2, 0.51])
    assert present_concepts(probs, ["red", "blue", "circle"]) == ["red", "circle"]


@pytest.fixture(scope="module")
def concept_run(corpus):  # noqa: F811
    cfg = tiny_config(
        corpus,
        "concepts",
        max_steps=60,
        model={**tiny_config(corpus, "x").model.to_dict(), "n_concepts": 6},
    )
    train(cfg)
    return Path(cfg.output_dir) / "last"


def test_a_model_learns_the_concepts_of_its_videos(corpus, concept_run):  # noqa: F811
    model = load_model(concept_run).eval()
    concepts = model.config.concepts
    assert len(concepts) == 6 and set(model.config.caption_idf) >= set(concepts)
    videos = load_annotations(corpus / "train.json")
    data = VideoDataset(videos, corpus / "features", model.config, model.time_tokenizer)
    batch = collate([data[i] for i in range(len(data))], model.time_tokenizer.pad_id)
    inputs = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
    inputs.pop("labels")
    probs = model.concept_probs(**inputs)
    assert probs.shape == (len(videos), 6)
    present, absent = [], []
    for i, video in enumerate(videos.values()):
        words = set(video.events[0].text.split())
        for c, p in zip(concepts, probs[i].tolist(), strict=True):
            (present if c in words else absent).append(p)
    assert sum(present) / len(present) > sum(absent) / len(absent) + 0.2


def test_selection_decodes_an_ensemble_from_its_members_captions(concept_run, corpus):  # noqa: F811
    from densevid.cli import main
    from densevid.events import load_submission

    base = ["-q", "predict", str(concept_run), str(concept_run), "--method", "greedy"]
    base += ["--features", str(corpus / "features")]
    base += ["--annotations", str(corpus / "val.json")]
    out, plain = corpus / "selected.json", corpus / "plain.json"
    assert main([*base, "--select", "-o", str(out)]) == 0
    assert main([*base, "-o", str(plain)]) == 0
    got, ref = load_submission(out), load_submission(plain)
    assert set(got) == set(ref)
    for vid in got:  # the same segments; captions from a member (here: the same)
        assert [(e.start, e.end) for e in got[vid].events] == [
            (e.start, e.end) for e in ref[vid].events
        ]
        assert all(e.text for e in got[vid].events)

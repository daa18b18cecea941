"""Self-critical training: the reward (CIDEr-D as coco-caption computes it, events
scored with their times), the policy-gradient loss's direction, and a run of the
``scst`` objective on the shared loop from an ML checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from densevid.checkpoint import load_model
from densevid.errors import DensevidError
from densevid.events import Event
from densevid.training import train
from densevid.training.rewards import CiderD, sequence_reward
from densevid.training.scst import policy_gradient_loss, sample_sequences
from test_train import corpus, tiny_config  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REFS = [
    "a man is cutting an onion on a board",
    "a girl jumps on a trampoline",
    "the dog runs after a red ball",
    "a man is cutting bread",
]
HYPS = [
    "a man cuts an onion",
    "a girl is jumping on the trampoline",
    "a cat sleeps",
    "a man is cutting an onion on a board",
]


def test_cider_d_equals_coco_caption_with_one_reference_each():
    from pycocoevalcap.cider.cider import Cider

    gts = {i: [r] for i, r in enumerate(REFS)}
    res = {i: [h] for i, h in enumerate(HYPS)}
    _, expected = Cider().compute_score(gts, res)
    cider = CiderD(REFS)
    got = [cider(h, r) for h, r in zip(HYPS, REFS, strict=True)]
    assert got == pytest.approx(list(expected), abs=1e-9)


def test_reward_prefers_right_times_and_right_words():
    cider = CiderD(REFS)
    refs = [Event(0.0, 10.0, REFS[0]), Event(12.0, 20.0, REFS[1])]
    for kind in ("soda", "f1"):
        exact = sequence_reward(refs, refs, cider, kind)
        shifted = [Event(e.start + 3, e.end + 3, e.text) for e in refs]
        worded = [Event(e.start, e.end, "a cat sleeps") for e in refs]
        assert exact > sequence_reward(shifted, refs, cider, kind) > 0
        assert exact > sequence_reward(worded, refs, cider, kind)
        assert sequence_reward([], refs, cider, kind) == 0.0


def _tiny_run(corpus, name, **kw):  # noqa: F811
    cfg = tiny_config(corpus, name, max_steps=30, **kw)
    train(cfg)
    return Path(cfg.output_dir)


@pytest.fixture(scope="module")
def ml_run(corpus):  # noqa: F811
    return _tiny_run(corpus, "ml_for_scst")


def _batch(corpus, model):  # noqa: F811
    from densevid.data import VideoDataset
    from densevid.events import load_annotations
    from densevid.inputs import collate

    videos = load_annotations(corpus / "train.json")
    data = VideoDataset(videos, corpus / "features", model.config, model.time_tokenizer)
    return collate([data[0], data[1]], model.time_tokenizer.pad_id)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_policy_gradient_raises_rewarded_and_lowers_penalised_samples(
    corpus,  # noqa: F811
    ml_run,
    sign,
):
    model = load_model(ml_run / "last")
    model.config.dropout = 0.0
    batch = _batch(corpus, model)
    torch.manual_seed(0)
    sampled, greedy = sample_sequences(model, batch, 2, 32)
    assert sampled.shape[0] == 4 and greedy.shape[0] == 2
    eos = model.time_tokenizer.eos_id
    advantage = torch.full((4,), sign)
    model.eval()  # no dropout: the same log-probabilities before and after

    def logp() -> float:
        with torch.no_grad():
            loss, _ = policy_gradient_loss(model, batch, sampled, advantage, 2, eos)
        return -float(loss) * sign  # the samples' mean token log-probability

    before = logp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loss, n = policy_gradient_loss(model, batch, sampled, advantage, 2, eos)
    assert n > 0
    loss.backward()
    opt.step()
    after = logp()
    assert (after - before) * sign > 0  # rewarded: likelier; penalised: less likely


@pytest.mark.parametrize(
    "variant",
    [{}, {"scst_baseline": "mean", "scst_ml_weight": 0.5, "scst_reward": "f1"}],
    ids=["greedy-baseline", "mean-baseline+ml"],
)
def test_scst_run_from_an_ml_checkpoint(corpus, ml_run, variant):  # noqa: F811
    init = str(ml_run / "last")
    name = "scst_" + "_".join(map(str, variant.values()))
    out = corpus / name
    cfg = tiny_config(
        corpus,
        name,
        objective="scst",
        init=init,
        max_steps=4,
        scst_samples=2,
        **variant,
    )
    summary = train(cfg)
    assert summary["step"] == 4
    assert len(summary["scst_reward_first"]) == 2  # (samples, greedy)
    assert load_model(out / "last").config.d_model == load_model(init).config.d_model
    assert json.loads((out / "config.json").read_text())["objective"] == "scst"
    with pytest.raises(DensevidError, match="scst fine-tunes a trained model"):
        tiny_config(corpus, "x", objective="scst").verify()
    with pytest.raises(DensevidError, match="scst_baseline must be"):
        tiny_config(
            corpus, "x", objective="scst", init=init, scst_baseline="x"
        ).verify()

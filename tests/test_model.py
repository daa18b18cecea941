"""The joint model on a tiny random T5: streams, masks, likelihood, save/load."""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from densevid.checkpoint import load_model, save_model
from densevid.config import ModelConfig
from densevid.errors import DensevidError
from densevid.model import build_model, perplexity, token_log_likelihood
from densevid.text import TimeTokenizer, train_tokenizer
from helpers import TINY_LM

CAPTIONS = ["a red circle moves left", "the blue square grows", "a star appears"]
N_TIME = 10


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_config(**kw) -> ModelConfig:
    base = dict(
        TINY_LM,
        n_layers=2,
        n_decoder_layers=2,
        n_time_tokens=N_TIME,
        n_frames=8,
        visual_dim=6,
    )
    base.update(kw)
    return ModelConfig(**base)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(CAPTIONS * 3, vocab_size=200, n_time_tokens=N_TIME)


def make_labels(tokenizer, n_videos=2):
    tt = TimeTokenizer(tokenizer, N_TIME)
    from densevid.events import Event

    seqs = [
        tt.encode_events([Event(1, 4, "a red circle moves left")], 9.0),
        tt.encode_events([Event(0, 2, "a star appears"), Event(3, 8, "grows")], 9.0),
    ][:n_videos]
    width = max(map(len, seqs))
    return torch.tensor([s + [-100] * (width - len(s)) for s in seqs])


def test_forward_shapes_and_mask_hides_padding(tokenizer):
    torch.manual_seed(0)
    model = build_model(tiny_config(), tokenizer).eval()
    labels = make_labels(tokenizer)
    visual = torch.randn(2, 8, 6)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1, 5:] = False
    logits = model(labels, visual=visual, visual_mask=mask)
    assert logits.shape == (2, labels.shape[1], len(tokenizer))
    # what sits in padded frames must not matter
    visual2 = visual.clone()
    visual2[1, 5:] = 100.0
    logits2 = model(labels, visual=visual2, visual_mask=mask)
    torch.testing.assert_close(logits, logits2)
    # what sits in real frames must
    visual2[1, 2] = 5.0
    assert not torch.allclose(
        model(labels, visual=visual2, visual_mask=mask)[1], logits[1]
    )


@pytest.mark.parametrize("kernel", [0, 3, 5])
def test_temporal_conv_lets_each_frame_see_its_neighbours_only(tokenizer, kernel):
    # no temporal transformer: what a frame's state sees is the convolution's reach,
    # two kernels wide (a change at frame 8 reaches frames 8 -/+ 2 * (kernel // 2))
    torch.manual_seed(0)
    cfg = tiny_config(n_frames=16, n_temporal_layers=0, temporal_conv=kernel)
    encoder = build_model(cfg, tokenizer).eval().visual
    x = torch.randn(1, 16, 6)
    mask = torch.ones(1, 16, dtype=torch.bool)
    y = x.clone()
    y[0, 8] = torch.randn(6)  # (not a constant shift: LayerNorm removes that)
    changed = (encoder(x, mask) - encoder(y, mask)).abs().amax(-1)[0] > 1e-6
    reach = 2 * (kernel // 2)
    assert changed.nonzero().flatten().tolist() == list(range(8 - reach, 9 + reach))


def test_features_of_another_dimension_are_one_error(tokenizer):
    model = build_model(tiny_config(), tokenizer).eval()
    with pytest.raises(DensevidError, match="are 7-d but the model reads 6-d"):
        model(
            make_labels(tokenizer),
            visual=torch.randn(2, 8, 7),
            visual_mask=torch.ones(2, 8, dtype=torch.bool),
        )


def test_log_likelihood_equals_cross_entropy(tokenizer):
    torch.manual_seed(1)
    logits = torch.randn(2, 5, 11)
    labels = torch.tensor([[1, 2, 3, -100, -100], [4, 5, 6, 7, 8]])
    total, count = token_log_likelihood(logits, labels)
    ref = -F.cross_entropy(logits.reshape(-1, 11), labels.reshape(-1), reduction="none")
    ref = ref.reshape(2, 5)
    torch.testing.assert_close(total, torch.stack([ref[0, :3].sum(), ref[1].sum()]))
    assert count.tolist() == [3, 5]
    assert perplexity(-math.log(4) * 3, 3) == pytest.approx(4.0)


def test_audio_and_speech_streams_are_concatenated(tokenizer):
    torch.manual_seed(2)
    config = tiny_config(
        audio_dim=3, audio_features="logmel", n_audio_frames=4, speech_features="asr"
    )
    model = build_model(config, tokenizer).eval()
    tt = TimeTokenizer(tokenizer, N_TIME)
    speech = tt.encode_speech([{"start": 0, "end": 2, "text": "a star"}], 9.0, 16)
    inputs = dict(
        visual=torch.randn(1, 8, 6),
        visual_mask=torch.ones(1, 8, dtype=torch.bool),
        audio=torch.randn(1, 4, 3),
        audio_mask=torch.ones(1, 4, dtype=torch.bool),
        speech_ids=torch.tensor([speech]),
        speech_mask=torch.ones(1, len(speech), dtype=torch.long),
    )
    hidden, mask = model.encode(**inputs)
    assert hidden.shape == (1, 8 + 4 + len(speech), 32)
    assert mask.sum().item() == 8 + 4 + len(speech)
    labels = make_labels(tokenizer, 1)
    base = model(labels, **inputs)
    for key, value in [
        ("audio", torch.randn(1, 4, 3)),
        ("speech_ids", torch.tensor([[5] * len(speech)])),
    ]:
        changed = model(labels, **{**inputs, key: value})
        assert not torch.allclose(base, changed), key
    with pytest.raises(DensevidError, match="audio"):
        model.encode(visual=inputs["visual"], visual_mask=inputs["visual_mask"])


def test_save_and_load_give_the_same_model(tokenizer, tmp_path):
    torch.manual_seed(3)
    model = build_model(tiny_config(), tokenizer).eval()
    save_model(model, tmp_path / "ckpt")
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in (tmp_path / "ckpt").iterdir()
    }
    loaded = load_model(tmp_path / "ckpt")
    assert loaded.config == model.config
    labels = make_labels(tokenizer)
    inputs = dict(
        visual=torch.randn(2, 8, 6), visual_mask=torch.ones(2, 8, dtype=torch.bool)
    )
    torch.testing.assert_close(loaded(labels, **inputs), model(labels, **inputs))
    assert loaded.tokenizer.encode("a red circle") == tokenizer.encode("a red circle")


def test_load_model_on_a_non_checkpoint_is_one_error(tmp_path):
    with pytest.raises(DensevidError, match="not a checkpoint"):
        load_model(tmp_path)


def test_config_checks_and_round_trip(tmp_path):
    with pytest.raises(DensevidError, match="dropout"):
        ModelConfig(dropout=1.5)
    with pytest.raises(DensevidError, match="unknown keys"):
        ModelConfig.from_dict({"d_modle": 3})
    with pytest.raises(DensevidError, match="temporal_conv must be 0"):
        ModelConfig(temporal_conv=4)
    cfg = tiny_config()
    cfg.save(tmp_path / "c.json")
    assert ModelConfig.load(tmp_path / "c.json") == cfg
    # new models interpolate frames; a checkpoint from before the option picked the
    # nearest rows and keeps doing so
    assert cfg.interpolate_frames
    legacy = cfg.to_dict()
    del legacy["interpolate_frames"]
    (tmp_path / "old.json").write_text(json.dumps(legacy), encoding="utf-8")
    assert not ModelConfig.load(tmp_path / "old.json").interpolate_frames
    assert ModelConfig.from_dict(legacy).interpolate_frames  # a run's config section


def test_pretrained_lm_from_a_local_path_keeps_its_weights(tokenizer, tmp_path):
    """The ``lm: t5-base`` case, offline: a T5 saved in a directory is loaded,
    its vocabulary grown to hold the time tokens, its other weights untouched."""
    from transformers import T5Config, T5ForConditionalGeneration

    from densevid.text import load_tokenizer, train_tokenizer

    torch.manual_seed(4)
    plain = train_tokenizer(CAPTIONS * 3, vocab_size=200, n_time_tokens=N_TIME)
    lm = T5ForConditionalGeneration(
        T5Config(
            vocab_size=len(plain) - N_TIME,
            d_model=32,
            d_ff=64,
            d_kv=8,
            num_heads=4,
            num_layers=1,
            decoder_start_token_id=0,
            pad_token_id=0,
            eos_token_id=1,
        )
    )
    lm.save_pretrained(tmp_path / "t5")
    plain.save_pretrained(tmp_path / "t5")
    config = tiny_config(lm=str(tmp_path / "t5"))
    model = build_model(config, load_tokenizer(tmp_path / "t5", N_TIME))
    assert model.lm.get_input_embeddings().num_embeddings == len(plain)
    assert config.vocab_size == len(plain) and config.d_model == 32
    torch.testing.assert_close(
        model.lm.decoder.block[0].layer[0].SelfAttention.q.weight,
        lm.decoder.block[0].layer[0].SelfAttention.q.weight,
    )
    save_model(model, tmp_path / "ckpt")
    loaded = load_model(tmp_path / "ckpt")  # needs neither the hub nor tmp/t5
    assert loaded.config.lm_config["vocab_size"] == len(plain)


def test_time_pointer_scores_time_tokens_by_their_frames(tokenizer, tmp_path):
    torch.manual_seed(4)
    model = build_model(tiny_config(time_pointer=True), tokenizer).eval()
    head = model.lm.lm_head
    t0 = model.config.time_offset
    assert tokenizer.convert_ids_to_tokens(t0) == "<time_0>"
    # 10 bins over 8 frames: bin k's middle (k + 0.5) / 9 lies in frame j
    assert head.frame_of_bin(8, torch.device("cpu")).tolist() == [
        0, 1, 2, 3, 4, 4, 5, 6, 7, 7,
    ]  # fmt: skip
    h = torch.randn(2, 3, 32)
    mem = torch.randn(2, 8, 32)
    head.memory = mem
    with torch.no_grad():
        got = head(h)
        keys = head.key(mem[:, head.frame_of_bin(8, mem.device)])
        want = head.base(h)
        want[..., t0 : t0 + N_TIME] += torch.einsum(
            "btd,bkd->btk", head.query(h), keys
        ) / math.sqrt(32)
    torch.testing.assert_close(got, want)
    # beams: the memory of each video serves its beams
    head.memory = mem
    beams = head(h.repeat_interleave(2, dim=0))
    torch.testing.assert_close(beams[::2], got)
    # the frames move only the time-token logits, and it survives save/load
    labels = make_labels(tokenizer)
    visual = torch.randn(2, 8, 6)
    mask = torch.ones(2, 8, dtype=torch.bool)
    save_model(model, tmp_path / "ptr")
    loaded = load_model(tmp_path / "ptr")
    assert loaded.config.time_pointer and loaded.config.time_offset == t0
    torch.testing.assert_close(
        loaded(labels, visual=visual, visual_mask=mask),
        model(labels, visual=visual, visual_mask=mask),
    )


def test_model_names_resolve_to_bundled_dirs_paths_or_one_hub_error(tmp_path):
    from densevid.checkpoint import BUNDLED_DIR, available_models, resolve_checkpoint

    for name in available_models():
        assert resolve_checkpoint(name) == BUNDLED_DIR / name
    assert resolve_checkpoint(tmp_path) == tmp_path
    assert resolve_checkpoint("runs/x/best") == Path("runs/x/best")  # not a repo id
    # a repo id with the hub unreachable (tests run offline): one line naming it
    with pytest.raises(DensevidError, match="nobody/no-such-model: no such checkpoint"):
        load_model("nobody/no-such-model")

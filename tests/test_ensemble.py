"""Ensembles whose members read different streams beside the frames (late fusion)."""

from dataclasses import replace

import pytest
import torch

from densevid.config import ModelConfig
from densevid.errors import DensevidError
from densevid.model import build_model
from densevid.text import TimeTokenizer, train_tokenizer
from helpers import TINY_LM

pytestmark = pytest.mark.usefixtures("one_torch_thread")

AUDIO = {"audio_features": "logmel", "audio_dim": 3, "n_audio_frames": 5}
SPEECH = {"speech_features": "subtitles", "max_speech_tokens": 16}


@pytest.fixture(scope="module")
def members():
    """Untrained tiny models on the same frames: frames only, + audio, + speech."""
    tok = train_tokenizer(
        ["a red circle moves left"] * 3, vocab_size=200, n_time_tokens=10
    )
    base = ModelConfig(
        **TINY_LM,
        n_time_tokens=10,
        n_frames=4,
        visual_dim=4,
        extractor_options={"pixels": {"tint": True}},
    )
    models = []
    for seed, extra in enumerate([{}, AUDIO, SPEECH]):
        torch.manual_seed(seed)
        options = dict(base.extractor_options)
        options.update({v: {} for k, v in extra.items() if k.endswith("_features")})
        config = replace(base, **extra, extractor_options=options)
        models.append(build_model(config, tok).eval())
    return models


def test_a_late_fusion_ensemble_reads_every_stream_and_mixes_its_members(members):
    from densevid.decoding import mix
    from densevid.ensemble import Ensemble

    frames, audio, speech = members
    late = Ensemble(members).eval()
    assert late.config.audio_features == "logmel" and late.config.audio_dim == 3
    assert late.config.n_audio_frames == 5 and late.config.use_speech
    assert late.config.max_speech_tokens == 16
    assert set(late.config.extractor_options) == {"pixels", "logmel", "subtitles"}
    assert not frames.config.use_audio  # the members' own configs are kept
    tt = TimeTokenizer(frames.tokenizer, 10)
    torch.manual_seed(5)
    inputs = {
        "visual": torch.randn(2, 4, 4),
        "visual_mask": torch.ones(2, 4, dtype=torch.bool),
        "audio": torch.randn(2, 5, 3),
        "audio_mask": torch.ones(2, 5, dtype=torch.bool),
        "speech_ids": torch.randint(0, 50, (2, 6)),
        "speech_mask": torch.ones(2, 6, dtype=torch.long),
    }
    labels = torch.tensor([[tt.time_id(1, 9), tt.time_id(3, 9), 5, tt.eos_id]] * 2)
    own = {
        "audio": ("visual", "visual_mask", "audio", "audio_mask"),
        "speech": ("visual", "visual_mask", "speech_ids", "speech_mask"),
        "frames": ("visual", "visual_mask"),
    }
    with torch.no_grad():
        alone = [
            torch.log_softmax(m(labels, **{k: inputs[k] for k in own[name]}), -1)
            for name, m in zip(("frames", "audio", "speech"), members, strict=True)
        ]
        # each member takes only its own streams: the others' change nothing
        assert torch.allclose(torch.log_softmax(frames(labels, **inputs), -1), alone[0])
        assert torch.allclose(late(labels, **inputs), mix(alone), atol=1e-6)
    with pytest.raises(DensevidError, match="needs audio features"):
        late(labels, visual=inputs["visual"], visual_mask=inputs["visual_mask"])


def test_members_reading_a_stream_must_read_it_alike(members):
    from densevid.ensemble import Ensemble

    frames, audio, _ = members
    other = build_model(
        replace(audio.config, lm_config={}, n_audio_frames=7), frames.tokenizer
    )
    with pytest.raises(DensevidError, match="c: .* n_audio_frames is 7, not 5"):
        Ensemble([frames, audio, other], ["a", "b", "c"])
    retinted = build_model(
        replace(frames.config, lm_config={}, extractor_options={"pixels": {}}),
        frames.tokenizer,
    )
    with pytest.raises(DensevidError, match="b: .* pixels features were extracted"):
        Ensemble([frames, retinted], ["a", "b"])
    wider = build_model(
        replace(frames.config, lm_config={}, n_frames=8), audio.tokenizer
    )
    with pytest.raises(DensevidError, match="b: .* n_frames is 8, not 4"):
        Ensemble([audio, wider], ["a", "b"])

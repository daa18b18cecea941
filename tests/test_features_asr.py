"""asr: word filtering and timing, silero-vad on speech made by espeak-ng."""

import shutil
import subprocess
import wave
from types import SimpleNamespace

import numpy as np
import pytest

from densevid.errors import DensevidError
from densevid.features.asr import AsrConfig, AsrExtractor, speech_regions, sphinx_words

SR = 16_000


class FakeDecoder:
    """Stands in for pocketsphinx.Decoder: returns fixed segments per utterance."""

    def __init__(self, segs):
        self.segs, self.n_utts = segs, 0

    def start_utt(self):
        self.n_utts += 1

    def process_raw(self, data, full_utt):
        pass

    def end_utt(self):
        pass

    def seg(self):
        return [
            SimpleNamespace(word=w, start_frame=a, end_frame=b) for w, a, b in self.segs
        ]


def test_sphinx_words_drop_non_words_and_use_absolute_times():
    dec = FakeDecoder(
        [
            ("<s>", 0, 5),
            ("the(2)", 6, 20),
            ("<sil>", 21, 30),
            ("[NOISE]", 31, 35),
            ("cat", 36, 59),
            ("</s>", 60, 61),
        ]
    )
    words = sphinx_words(np.zeros(5 * SR, np.float32), [(1.0, 2.0), (3.0, 4.5)], dec)
    assert dec.n_utts == 2
    assert [w["text"] for w in words] == ["the", "cat", "the", "cat"]
    assert words[0]["start"] == pytest.approx(1.06)
    assert words[1]["end"] == pytest.approx(1.60)
    assert words[2]["start"] == pytest.approx(3.06)


def test_unknown_engine_and_missing_package():
    with pytest.raises(DensevidError, match="unknown ASR engine"):
        AsrConfig(engine="sphinx3")
    try:
        import whisper  # noqa: F401

        pytest.skip("openai-whisper is installed")
    except ImportError:
        pass
    with pytest.raises(DensevidError, match="pip install openai-whisper"):
        AsrExtractor(engine="whisper").load()


def _espeak(text: str, tmp_path) -> np.ndarray:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    path = tmp_path / "s.wav"
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
    with wave.open(str(path)) as w:
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), np.int16) / 32768.0
    t = np.arange(int(len(x) * SR / rate)) / SR
    return np.interp(t, np.arange(len(x)) / rate, x).astype(np.float32)


def test_vad_finds_speech_where_it_was_put(tmp_path):
    pytest.importorskip("silero_vad")
    speech = _espeak("The red circle moves slowly to the left of the screen.", tmp_path)
    audio = np.zeros(10 * SR, np.float32)
    audio[3 * SR : 3 * SR + len(speech)] = speech
    loud = np.flatnonzero(np.abs(audio) > 0.02)
    onset, offset = loud[0] / SR, loud[-1] / SR  # reference from the waveform itself
    regions = speech_regions(audio)
    assert regions, "no speech found"
    assert regions[0][0] == pytest.approx(onset, abs=0.3)
    assert regions[-1][1] == pytest.approx(offset, abs=0.4)
    assert all(onset - 0.3 <= a < b <= offset + 0.4 for a, b in regions)
    assert speech_regions(np.zeros(3 * SR, np.float32)) == []


def test_pocketsphinx_transcript_lies_inside_the_speech(tmp_path):
    pytest.importorskip("silero_vad")
    pytest.importorskip("pocketsphinx")
    speech = _espeak("Hello. The blue square grows bigger and bigger.", tmp_path)
    audio = np.zeros(8 * SR, np.float32)
    audio[2 * SR : 2 * SR + len(speech)] = speech
    sents = AsrExtractor().transcribe(audio)
    assert sents, "pocketsphinx heard nothing"
    end = 2 + len(speech) / SR
    for s in sents:
        assert 1.7 <= s["start"] < s["end"] <= end + 0.4
        assert s["text"].strip() and s["text"] == s["text"].lower()

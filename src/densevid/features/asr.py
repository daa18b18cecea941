"""``asr``: the speech of a video as timed sentences, from its audio track.

Engines (``engine=``):

- ``pocketsphinx`` (default, offline: the package ships its US-English model):
  silero-vad (which ships its model) finds the speech regions, pocketsphinx decodes
  each one into words with 10 ms frame times, and the words are merged into
  sentences at pauses (``subtitles.merge_sentences``). Honest expectations: the
  speech *times* are reliable; the *words* are not — on synthetic espeak-ng speech
  pocketsphinx gets most words wrong (word error rate 60-90 %). Prefer subtitles,
  or whisper where its weights can be had.
- ``whisper`` (``pip install openai-whisper``) and ``faster-whisper``
  (``pip install faster-whisper``): much better text, when the package is installed and
  the model's weights are available locally (a model name in the engine's cache or a
  path); their own segments are kept as sentences.

Install the default engine with ``pip install "densevid[asr]"``.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from densevid.device import resolve_device
from densevid.errors import DensevidError
from densevid.features.registry import Extractor, FeatureResult, require
from densevid.features.subtitles import MAX_GAP_S, MAX_SENTENCE_S, merge_sentences

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # Hz, what every engine here expects
ENGINES = ("pocketsphinx", "whisper", "faster-whisper")
SPHINX_FRAME_S = 0.01  # pocketsphinx's frame shift
VAD_THRESHOLD = 0.5
MIN_SPEECH_S = 0.25
MIN_SILENCE_S = 0.3
SPEECH_PAD_S = 0.1
# pocketsphinx's non-words: sentence marks, silence, fillers like [NOISE], ++UH++.
_NON_WORD = re.compile(r"^(<s>|</s>|<sil>|\[.*\]|\+\+.*\+\+|<.*>)$")
_ALT = re.compile(r"\(\d+\)$")  # alternative pronunciations: "the(2)"


@dataclass(frozen=True)
class AsrConfig:
    """Options of the ``asr`` extractor."""

    engine: str = "pocketsphinx"
    model: str | None = None  # whisper model name/path; default "base"
    language: str = "en"
    device: str = "auto"
    vad_threshold: float = VAD_THRESHOLD
    max_gap: float = MAX_GAP_S
    max_duration: float = MAX_SENTENCE_S

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise DensevidError(
                f"unknown ASR engine '{self.engine}'; choose from {', '.join(ENGINES)}"
            )


def speech_regions(
    audio: np.ndarray, *, threshold: float = VAD_THRESHOLD
) -> list[tuple[float, float]]:
    """Speech regions in seconds from silero-vad (its bundled model, on the CPU)."""
    import torch

    silero = require("silero_vad", "silero-vad", "the asr extractor's voice detection")
    model = _silero_model(silero)
    model.reset_states()
    stamps = silero.get_speech_timestamps(
        torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)),
        model,
        threshold=threshold,
        sampling_rate=SAMPLE_RATE,
        min_speech_duration_ms=int(MIN_SPEECH_S * 1000),
        min_silence_duration_ms=int(MIN_SILENCE_S * 1000),
        speech_pad_ms=int(SPEECH_PAD_S * 1000),
    )
    return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]


_SILERO: Any = None


def _silero_model(silero: Any) -> Any:
    global _SILERO
    if _SILERO is None:
        with warnings.catch_warnings():  # its loader uses deprecated APIs
            warnings.simplefilter("ignore", DeprecationWarning)
            _SILERO = silero.load_silero_vad()
    return _SILERO


def sphinx_words(
    audio: np.ndarray, regions: list[tuple[float, float]], decoder: Any
) -> list[dict[str, Any]]:
    """Decodes each region with pocketsphinx -> words with absolute times."""
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    words: list[dict[str, Any]] = []
    for start, end in regions:
        chunk = pcm[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
        if len(chunk) < SAMPLE_RATE * SPHINX_FRAME_S * 5:
            continue
        decoder.start_utt()
        decoder.process_raw(chunk.tobytes(), full_utt=True)
        decoder.end_utt()
        for seg in decoder.seg():
            if _NON_WORD.match(seg.word):
                continue
            words.append(
                {
                    "start": start + seg.start_frame * SPHINX_FRAME_S,
                    "end": start + (seg.end_frame + 1) * SPHINX_FRAME_S,
                    "text": _ALT.sub("", seg.word),
                }
            )
    return words


class AsrExtractor(Extractor):
    """Reads the audio track and transcribes it with the configured engine."""

    name = "asr"
    kind = "speech"
    Config = AsrConfig

    def __init__(self, config: AsrConfig | None = None, **options: Any) -> None:
        super().__init__(config, **options)
        self._engine: Any = None

    @property
    def weights(self) -> str:
        if self.config.engine == "pocketsphinx":
            return "pocketsphinx en-us model + silero-vad (bundled in the packages)"
        return f"{self.config.engine}: {self.config.model or 'base'}"

    def load(self) -> Any:
        """Loads the engine once (checks the packages before any video is read)."""
        if self._engine is None:
            cfg = self.config
            if cfg.engine == "pocketsphinx":
                require("silero_vad", "silero-vad", "the asr extractor")
                ps = require("pocketsphinx", "pocketsphinx", "the asr extractor")
                self._engine = ps.Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
            elif cfg.engine == "whisper":
                whisper = require("whisper", "openai-whisper", "asr engine 'whisper'")
                dev = resolve_device(cfg.device, "asr")
                self._engine = _load_engine(
                    lambda: whisper.load_model(cfg.model or "base", device=dev), cfg
                )
            else:
                fw = require(
                    "faster_whisper", "faster-whisper", "asr engine 'faster-whisper'"
                )
                kind = resolve_device(cfg.device, "asr").type
                self._engine = _load_engine(
                    lambda: fw.WhisperModel(cfg.model or "base", device=kind), cfg
                )
        return self._engine

    def transcribe(self, audio: np.ndarray) -> list[dict[str, Any]]:
        """16 kHz mono float audio (S,) -> sentences [{"start", "end", "text"}]."""
        cfg = self.config
        engine = self.load()
        if cfg.engine == "pocketsphinx":
            regions = speech_regions(audio, threshold=cfg.vad_threshold)
            words = sphinx_words(audio, regions, engine)
            return merge_sentences(
                words, max_gap=cfg.max_gap, max_duration=cfg.max_duration
            )
        if cfg.engine == "whisper":
            result = engine.transcribe(audio.astype(np.float32), language=cfg.language)
            segs = result["segments"]
        else:
            segs_iter, _ = engine.transcribe(
                audio.astype(np.float32), language=cfg.language
            )
            segs = [{"start": s.start, "end": s.end, "text": s.text} for s in segs_iter]
        return [
            {"start": float(s["start"]), "end": float(s["end"]), "text": s["text"]}
            for s in segs
            if s["text"].strip()
        ]

    def __call__(self, video: str | os.PathLike) -> FeatureResult:
        from densevid import video as vid

        self.load()
        info = vid.probe(video)
        audio = vid.read_audio(video, sample_rate=SAMPLE_RATE)
        segments = [s | {"text": s["text"].strip()} for s in self.transcribe(audio)]
        meta = self.describe() | {
            "duration": float(info.duration),
            "engine": self.config.engine,
        }
        return FeatureResult(meta=meta, segments=segments)


def _load_engine(load: Any, cfg: AsrConfig) -> Any:
    try:
        return load()
    except Exception as e:  # noqa: BLE001 - engines raise many types for missing weights
        raise DensevidError(
            f"asr engine '{cfg.engine}' could not load model "
            f"'{cfg.model or 'base'}' ({str(e).splitlines()[0] if str(e) else e!r}); "
            "offline, pass a local model path with --asr-model"
        ) from e

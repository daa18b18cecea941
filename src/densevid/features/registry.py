"""Extractor registry: a feature name -> how to make it (fps, dimension, weights).

Every extractor is a class with a ``Config`` dataclass of its options and a
``__call__(video_path) -> FeatureResult``; ``get_extractor(name, **options)`` builds
one, ``available_extractors()`` lists them. Dense extractors (visual, audio) return a
``[T, D]`` array; speech extractors (asr, subtitles) return timed sentences. New
extractors register with ``register_extractor``, so a user's own feature goes through
the same cached, resumable ``densevid extract`` run.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from densevid.errors import DensevidError

logger = logging.getLogger(__name__)

Kind = Literal["visual", "audio", "speech"]


@dataclass
class FeatureResult:
    """One video's output of one extractor.

    Dense streams set ``array`` ((T, D) float) and speech streams set ``segments``
    ([{"start", "end", "text"}, ...]); ``meta`` goes into the sidecar (it holds at least
    "fps" and "duration" for dense streams).
    """

    meta: dict[str, Any]
    array: np.ndarray | None = None
    segments: list[dict[str, Any]] | None = None

    @property
    def is_speech(self) -> bool:
        return self.segments is not None


class Extractor(ABC):
    """Turns one video file into one stream. Subclasses set the class attributes."""

    name: ClassVar[str]
    kind: ClassVar[Kind]
    Config: ClassVar[type]

    def __init__(self, config: Any | None = None, **options: Any) -> None:
        if config is None:
            config = make_config(self.Config, options, self.name)
        elif options:
            config = dataclasses.replace(config, **options)
        self.config = config

    @abstractmethod
    def __call__(self, video: str | os.PathLike) -> FeatureResult:
        """Extracts the stream of one video; raises DensevidError for bad input."""

    @property
    def fps(self) -> float | None:
        """Rows per second of the dense stream (None for speech)."""
        return getattr(self.config, "fps", None)

    @property
    def dim(self) -> int | None:
        """Feature dimension D (None for speech or when known only after loading)."""
        return None

    @property
    def weights(self) -> str:
        """Where the weights come from, for the sidecar and ``--list``."""
        return "none"

    def describe(self) -> dict[str, Any]:
        """The extractor's identity, stored in every sidecar for provenance."""
        return {
            "extractor": self.name,
            "kind": self.kind,
            "weights": self.weights,
            "config": jsonable_config(self.config),
        }


@dataclass(frozen=True)
class ExtractorInfo:
    """A registry entry; ``target`` is "module:Class", imported only when used."""

    name: str
    kind: Kind
    target: str
    summary: str
    default_fps: float | None = None
    default_dim: int | None = None
    weights: str = "none"
    extras: tuple[str, ...] = field(default=())

    def load_class(self) -> type[Extractor]:
        module, _, cls = self.target.partition(":")
        return getattr(importlib.import_module(module), cls)


_REGISTRY: dict[str, ExtractorInfo] = {}


def register_extractor(info: ExtractorInfo, *, overwrite: bool = False) -> None:
    """Adds an extractor under ``info.name`` (a plain name: it is a directory)."""
    if info.name in _REGISTRY and not overwrite:
        raise DensevidError(f"extractor '{info.name}' is already registered")
    if not info.name.replace("_", "").replace("-", "").isalnum():
        raise DensevidError(f"extractor name {info.name!r}: use letters, digits, -, _")
    _REGISTRY[info.name] = info


def available_extractors() -> dict[str, ExtractorInfo]:
    """Name -> registry entry, in registration order."""
    return dict(_REGISTRY)


def get_extractor(name: str, **options: Any) -> Extractor:
    """Builds the extractor ``name`` with its Config fields set from ``options``."""
    info = _REGISTRY.get(name)
    if info is None:
        raise DensevidError(
            f"unknown feature extractor '{name}'; available: {', '.join(_REGISTRY)}"
        )
    return info.load_class()(**options)


def make_config(cls: type, options: dict[str, Any], name: str) -> Any:
    """cls(**options) with one clear error for an option the extractor lacks."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise DensevidError(
            f"extractor '{name}' has no option {', '.join(unknown)}; "
            f"its options: {', '.join(sorted(known))}"
        )
    defaults = {
        f.name: f.default for f in dataclasses.fields(cls) if f.default is not None
    }
    checked = {
        k: _option_value(name, k, v, defaults.get(k)) for k, v in options.items()
    }
    return cls(**checked)


def _option_value(name: str, key: str, value: Any, default: Any) -> Any:
    """``value`` as the type of the option's default (a number for a float, a whole
    number for an int, true/false for a bool), or one error naming the option: a
    stray string such as ``tint=maybe`` would otherwise be taken as true."""
    if default is None or isinstance(default, (str, Path)):
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
        want = "true or false"
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
        want = "a whole number"
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
        want = "a number"
    else:
        return value
    if not ok:
        raise DensevidError(
            f"extractor '{name}' option {key} must be {want}, got {value!r}"
        )
    return value


def parse_feature_list(spec: str | list[str]) -> list[str]:
    """'pixels,clip' or ['pixels', 'clip'] -> checked list without duplicates."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names: list[str] = []
    for raw in items:
        name = raw.strip()
        if not name:
            continue
        if name not in _REGISTRY:
            raise DensevidError(
                f"unknown feature extractor '{name}'; available: {', '.join(_REGISTRY)}"
            )
        if name not in names:
            names.append(name)
    if not names:
        raise DensevidError("no feature extractor named (e.g. --features pixels)")
    return names


def require(module: str, pip_name: str, what: str) -> Any:
    """Imports an optional dependency or raises one line naming the pip package."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise DensevidError(
            f"{what} needs the '{pip_name}' package: pip install {pip_name}"
        ) from e


def jsonable_config(config: Any) -> dict[str, Any]:
    out = {}
    for k, v in dataclasses.asdict(config).items():
        out[k] = str(v) if isinstance(v, Path) else v
    return out


def _register_builtins() -> None:
    for info in (
        ExtractorInfo(
            "pixels",
            "visual",
            "densevid.features.pixels:PixelsExtractor",
            "RGB thumbnails + edge orientations + motion energy/direction",
            default_fps=2.0,
            default_dim=None,
        ),
        ExtractorInfo(
            "frames",
            "visual",
            "densevid.features.frames:FramesExtractor",
            "decoded frames themselves (uint8), for a model's own visual encoder",
            default_fps=2.0,
        ),
        ExtractorInfo(
            "clip",
            "visual",
            "densevid.features.clip:ClipExtractor",
            "CLIP image embeddings (transformers CLIPVisionModelWithProjection)",
            default_fps=1.0,
            default_dim=768,
            weights="hub: openai/clip-vit-large-patch14 (or a local directory)",
        ),
        ExtractorInfo(
            "logmel",
            "audio",
            "densevid.features.logmel:LogmelExtractor",
            "log-mel spectrogram windows of the 16 kHz audio (VGGish framing)",
            default_fps=1 / 0.96,
        ),
        ExtractorInfo(
            "asr",
            "speech",
            "densevid.features.asr:AsrExtractor",
            "speech transcript as timed sentences (pocketsphinx + silero-vad, "
            "or whisper / faster-whisper)",
            weights="bundled in the pocketsphinx / silero-vad packages",
            extras=("pocketsphinx", "silero-vad"),
        ),
        ExtractorInfo(
            "subtitles",
            "speech",
            "densevid.features.subtitles:SubtitlesExtractor",
            "timed sentences from a .srt/.vtt file beside the video",
        ),
    ):
        register_extractor(info)


_register_builtins()


RUNTIME_OPTIONS = ("device", "batch_size")  # options that do not change the rows


def option_differences(
    name: str,
    found: dict[str, Any],
    wanted: dict[str, Any],
    labels: tuple[str, str] = ("there", "asked"),
) -> list[str]:
    """Each option of extractor ``name`` on which two stored configurations
    (sidecars' or a model's ``extractor_options``) differ, as "key: X there, Y
    asked" (``labels``).

    An option absent from either side is taken at its default (it was added to the
    extractor after that side was written); run-time options are ignored.
    """
    info = _REGISTRY.get(name)
    defaults: dict[str, Any] = {}
    if info is not None:
        cls = info.load_class().Config
        defaults = json.loads(json.dumps(jsonable_config(cls())))
    a, b = defaults | dict(found), defaults | dict(wanted)
    return [
        f"{k}: {a.get(k)!r} {labels[0]}, {b.get(k)!r} {labels[1]}"
        for k in sorted(set(a) | set(b))
        if k not in RUNTIME_OPTIONS and a.get(k) != b.get(k)
    ]

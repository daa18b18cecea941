"""Configuration: the model's architecture dataclass and the helpers that read configs.

Every option reaches the code the same way: a YAML file, then ``key=value`` overrides
parsed as YAML (``--set`` for runs, ``--option`` for extractors), then a dataclass
that checks its own fields (``coerce_numbers`` turns YAML 1.1's ``3e-4`` strings into
numbers and names a key whose value is not one).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from densevid.errors import DensevidError

T = TypeVar("T")

METHODS = ("beam", "greedy")  # decoding's search methods
VISUAL_FUSIONS = ("concat", "sum")  # how several visual streams enter the model
# a number YAML 1.1 reads as a string: no dot before the exponent (3e-4)
EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def coerce_numbers(obj: Any) -> None:
    """Casts a config dataclass's numeric fields to their defaults' types.

    YAML 1.1 reads ``3e-4`` as a string and ``1`` as an int; a value that is not a
    number where one is due is an error naming the key.
    """
    for f in fields(obj):
        if f.default is MISSING or f.default is None:
            continue
        value, default = getattr(obj, f.name), f.default
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise DensevidError(
                    f"config: {f.name} must be true or false: {value!r}"
                )
            continue
        if not isinstance(default, int | float) or type(value) is type(default):
            continue
        try:
            cast = type(default)(value)
        except (TypeError, ValueError):
            raise DensevidError(
                f"config: {f.name} must be a number: {value!r}"
            ) from None
        if isinstance(value, bool) or (
            isinstance(default, int) and cast != float(value)
        ):
            raise DensevidError(f"config: {f.name} must be an integer: {value!r}")
        object.__setattr__(obj, f.name, cast)


def dataclass_from_dict(cls: type[T], d: Mapping[str, Any], what: str) -> T:
    """``cls(**d)``, with one error naming the keys ``cls`` does not have."""
    unknown = set(d) - {f.name for f in fields(cls)}
    if unknown:
        raise DensevidError(f"{what}: unknown keys {sorted(unknown)}")
    return cls(**dict(d))


def parse_value(raw: str) -> Any:
    """An override's value as YAML (``true``, ``0.5``, ``[a, b]``), or the raw text
    when it is not valid YAML. ``3e-4``, a string to YAML 1.1, is a number here."""
    import yaml

    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if isinstance(value, str) and EXPONENT_NUMBER.fullmatch(value.strip()):
        return float(value)
    return value


def read_config_dict(
    path: str | os.PathLike | None, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """A YAML (or JSON) config file as a dict, with ``key=value`` overrides applied.

    Keys may be dotted (``model.d_model=128``); values are parsed as YAML, so
    ``true``, ``3e-4`` and ``[a.json, b.json]`` work. ``densevid pretrain`` reads its
    configs the same way.
    """
    import yaml

    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise DensevidError(f"{p}: no such config file")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise DensevidError(f"{p}: not valid YAML ({where}{problem})") from e
        if not isinstance(data, dict):
            raise DensevidError(f"{p}: expected a mapping of config keys")
    for item in overrides:
        if "=" not in item:
            raise DensevidError(f"override {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        value = parse_value(raw)
        target = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise DensevidError(f"override {item!r}: {part} is not a section")
        target[parts[-1]] = value
    return data


@dataclass
class ModelConfig:
    """Architecture and input contract; saved as config.json beside the weights.

    Attributes:
        lm: hub name or path of a T5-family model to start from; "" builds a T5 from
            the ``d_model``... fields below with random weights.
        lm_config: the LM's full transformers config (filled in when the model is
            built, so a checkpoint loads without the hub).
        vocab_size: tokenizer size including time tokens (filled in when built).
        n_time_tokens: N, the number of relative time bins.
        n_frames: F, frames sampled uniformly over each video.
        interpolate_frames: each frame blends the two feature rows around its time
            (``densevid.data.sample_frames``) instead of being the nearest row, so
            frame j shows the video at the time the time tokens say it stands for.
            Checkpoints saved before the option existed read the nearest rows.
        visual_dim: dimension of the visual features (of the blocks used).
        visual_blocks: blocks of the visual features to use, by the names of their
            sidecar's layout (pixels: rgb, edges, motion, blobs); empty: all.
        visual_features / audio_features / speech_features: extractor names the
            features are read from (``FEATURES/<extractor>/<video_id>.npy``); empty
            strings turn the audio / speech streams off. ``visual_features`` may
            name several streams joined by commas (``i3d_rgb,i3d_flow``, a YAML
            list reads the same): each stream's rows are resampled onto the first
            stream's row times and the rows are concatenated per time step.
        visual_fusion: how several visual streams enter the model: ``concat``
            normalises the concatenated row as one vector; ``sum`` normalises each
            stream on its own (a linear projection of the concatenation is then the
            sum of per-stream projections), so a stream of large values cannot
            drown the others.
        visual_stream_dims: each visual stream's dimension (filled in when the
            model is built; empty for one stream).
        audio_dim: dimension of the audio features (0: no audio stream).
        n_audio_frames: audio steps sampled per video.
        max_speech_tokens / max_target_tokens: sequence caps (tokens).
        extractor_options: extractor name -> the options its training features were
            made with (from their sidecars), so captioning a new video extracts the
            same features.
        max_duration: the longest training video (s); longer videos are captioned in
            windows of this length.
        n_temporal_layers, n_temporal_heads: the temporal transformer.
        temporal_conv: kernel size (frames, odd) of a residual block of two 1-D
            convolutions before the temporal transformer; 0: none. A transformer with
            learned absolute positions finds "this frame differs from its
            neighbours" (where events start and end) only slowly; a convolution sees
            it from the first step.
        input_norm: LayerNorm over each input feature vector before its projection.
        time_pointer: time tokens also score by pointing at frames
            (``TimePointerHead``).
        time_offset: id of ``<time_0>`` (filled in when built; time ids are contiguous).
        standardize: each input feature dimension is first standardised with the
            training features' mean and std (stored in the checkpoint): fields of
            very different scales (pixels' blob mass ~0.01 beside positions ~0.5)
            then start on an equal footing.
        frame_events: a head on the visual states that says, per frame, whether an
            event is under way, starts or ends there (``frame_head``); trained
            beside the captions with ``TrainConfig.event_loss_weight``.
        n_proposal_anchors: K, anchors per frame of the proposal head
            (``densevid.proposals``, the two-stage baseline); 0: no head.
        proposal_anchors: the anchors' lengths, fractions of the video (training
            fills them: quantiles of the training events' relative lengths).
        visual_encoder: with ``visual_features: frames``, the network that turns
            each row of raw frames into an embedding, trained with the captioner
            (``densevid.visual_encoder``): ``cnn`` (a small CNN from scratch, the
            default) or ``hf:NAME`` (a pretrained CLIP vision tower, hub name or
            directory). Empty for feature rows.
        encoder_width, encoder_dim: the ``cnn`` encoder's first-layer channels
            (doubled per stride-2 stage) and its embedding size.
        frame_shape: (substeps, size, size, 3) of a frames row (filled in when
            the model is built, from the stream's sidecar).
        encoder_config: a pretrained encoder's transformers config (filled in
            when built, so a checkpoint loads without the hub).
        domain_stats: statistics of the training videos' visual features
            (``densevid.domain.DomainStats``), recorded by ``densevid train``;
            captioning warns when a video's features lie far outside them. Empty
            (checkpoints saved before the check): no check.
    """

    lm: str = ""
    lm_config: dict[str, Any] = field(default_factory=dict)
    vocab_size: int = 0
    d_model: int = 256
    d_ff: int = 1024
    d_kv: int = 32
    n_heads: int = 8
    n_layers: int = 4
    n_decoder_layers: int = 4
    dropout: float = 0.1
    n_time_tokens: int = 100
    n_frames: int = 100
    interpolate_frames: bool = True
    visual_dim: int = 0
    visual_features: str = "pixels"
    visual_blocks: list[str] = field(default_factory=list)
    visual_fusion: str = "concat"
    visual_stream_dims: list[int] = field(default_factory=list)
    n_temporal_layers: int = 2
    n_temporal_heads: int = 8
    temporal_conv: int = 0
    input_norm: bool = True
    audio_dim: int = 0
    audio_features: str = ""
    n_audio_frames: int = 100
    speech_features: str = ""
    max_speech_tokens: int = 256
    max_target_tokens: int = 256
    extractor_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_duration: float = 0.0
    time_pointer: bool = False
    time_offset: int = 0
    frame_events: bool = False
    standardize: bool = False
    domain_stats: dict[str, Any] = field(default_factory=dict)
    # semantic concepts (densevid.concepts): a head predicting the n_concepts most
    # frequent content words of the training captions, per video and per event;
    # training fills concepts and the IDF of every caption word
    n_concepts: int = 0
    concepts: list[str] = field(default_factory=list)
    caption_idf: dict[str, float] = field(default_factory=dict)
    n_proposal_anchors: int = 0
    proposal_anchors: list[float] = field(default_factory=list)
    # end to end: a visual encoder over raw frames (densevid.visual_encoder)
    visual_encoder: str = ""
    encoder_width: int = 32
    encoder_dim: int = 256
    frame_shape: list[int] = field(default_factory=list)
    encoder_config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.visual_features, list | tuple):
            self.visual_features = ",".join(self.visual_features)
        coerce_numbers(self)
        if self.visual_fusion not in VISUAL_FUSIONS:
            raise DensevidError(
                f"model config: visual_fusion must be one of {VISUAL_FUSIONS}: "
                f"{self.visual_fusion!r}"
            )
        if len(self.visual_streams) > 1 and self.visual_blocks:
            raise DensevidError(
                "model config: visual_blocks selects blocks of one stream; with "
                f"several ({self.visual_features}) leave it empty"
            )
        for name in ("n_time_tokens", "n_frames", "d_model", "n_temporal_heads"):
            if getattr(self, name) < 1:
                raise DensevidError(f"model config: {name} must be >= 1")
        if self.n_time_tokens < 2:
            raise DensevidError("model config: n_time_tokens must be >= 2")
        if not 0.0 <= self.dropout < 1.0:
            raise DensevidError(
                f"model config: dropout must be in [0, 1): {self.dropout}"
            )
        if self.temporal_conv < 0 or (
            self.temporal_conv and self.temporal_conv % 2 == 0
        ):
            raise DensevidError(
                "model config: temporal_conv must be 0 (none) or an odd kernel size: "
                f"{self.temporal_conv}"
            )

        if self.n_proposal_anchors < 0 or not all(
            0 < a <= 1 for a in self.proposal_anchors
        ):
            raise DensevidError(
                "model config: n_proposal_anchors must be >= 0 and proposal_anchors "
                f"in (0, 1]: {self.n_proposal_anchors}, {self.proposal_anchors}"
            )

        self._check_frames()

    def _check_frames(self) -> None:
        """A model reading frames (``visual_features: frames``) has an encoder and
        none of the options that only make sense for feature rows."""
        if not self.reads_frames:
            if self.visual_encoder:
                raise DensevidError(
                    "model config: visual_encoder reads raw frames: set "
                    f"visual_features to 'frames' (it is {self.visual_features!r})"
                )
            return
        self.visual_encoder = self.visual_encoder or "cnn"
        if self.visual_encoder != "cnn" and not self.visual_encoder.startswith("hf:"):
            raise DensevidError(
                "model config: visual_encoder must be 'cnn' or 'hf:NAME': "
                f"{self.visual_encoder!r}"
            )
        for name, bad in (
            ("visual_blocks", bool(self.visual_blocks)),
            ("standardize", self.standardize),
        ):
            if bad:
                raise DensevidError(
                    f"model config: {name} applies to feature rows; a model reading "
                    "frames learns its own encoder: leave it unset (set "
                    f"model.{name}={'[]' if name == 'visual_blocks' else 'false'})"
                )
        if self.encoder_width < 1 or self.encoder_dim < 1:
            raise DensevidError(
                "model config: encoder_width and encoder_dim must be >= 1"
            )

    @property
    def reads_frames(self) -> bool:
        """The visual stream is raw frames through the model's own encoder."""
        return self.visual_features == "frames"

    @property
    def input_dim(self) -> int:
        """The width of a visual row the model takes: a frames row's pixels, or
        the feature dimension."""
        if self.reads_frames and self.frame_shape:
            return math.prod(self.frame_shape)
        return self.visual_dim

    @property
    def interpolates(self) -> bool:
        """Frame slots blend the rows around them (``interpolate_frames``); raw
        frames are never blended: a slot takes the nearest row."""
        return self.interpolate_frames and not self.reads_frames

    @property
    def visual_streams(self) -> list[str]:
        """The extractor names ``visual_features`` joins (one, most often)."""
        return [n.strip() for n in self.visual_features.split(",") if n.strip()]

    @property
    def use_audio(self) -> bool:
        return bool(self.audio_features) and self.audio_dim > 0

    @property
    def use_speech(self) -> bool:
        return bool(self.speech_features)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        return dataclass_from_dict(cls, d, "model config")

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> ModelConfig:
        from densevid.events import read_json

        d = read_json(path)
        if isinstance(d, dict):  # saved before frames were interpolated
            d.setdefault("interpolate_frames", False)
        return cls.from_dict(d)


@dataclass(frozen=True)
class DecodingOptions:
    """How to generate; change per call with ``dataclasses.replace``.

    Attributes:
        method: "beam" or "greedy".
        beam_size: beams for "beam".
        max_length: most generated tokens per video.
        constrained: apply the time-token grammar (off only for ablations).
        length_penalty: beam-score exponent on length (transformers' meaning).
        refine_frames: how far (frames) a boundary may move to a peak of the
            frame-event head (models with ``frame_events``); 0 turns it off.
        soft_time: half-width (bins) of the window whose probabilities place a
            time token between bins; 0 reads the bin alone.
        eos_bias: added to the score of ``</s>`` at every step: below 0 the model
            goes on to further events it is less sure of (recall for precision).
    """

    method: str = "beam"
    beam_size: int = 4
    max_length: int = 256
    constrained: bool = True
    length_penalty: float = 1.0
    refine_frames: int = 2
    soft_time: int = 0
    eos_bias: float = 0.0

    def verify(self) -> DecodingOptions:
        """Checks every option at once; returns self for chaining."""
        if self.method not in METHODS:
            raise DensevidError(
                f"decoding method must be one of {METHODS}, got {self.method!r}"
            )
        if self.beam_size < 1:
            raise DensevidError(f"beam_size must be >= 1, got {self.beam_size}")
        if self.max_length < 4:
            raise DensevidError(f"max_length must be >= 4, got {self.max_length}")
        if self.refine_frames < 0:
            raise DensevidError(f"refine_frames must be >= 0: {self.refine_frames}")
        if self.soft_time < 0:
            raise DensevidError(f"soft_time must be >= 0: {self.soft_time}")
        if not math.isfinite(self.eos_bias):
            raise DensevidError(f"eos_bias must be finite: {self.eos_bias}")
        if not math.isfinite(self.length_penalty):
            raise DensevidError(f"length_penalty must be finite: {self.length_penalty}")
        return self

    @property
    def n_beams(self) -> int:
        return 1 if self.method == "greedy" else self.beam_size


@dataclass(frozen=True)
class ProposalOptions:
    """How the two-stage baseline chooses its proposals (``densevid.proposals``);
    change per call with ``dataclasses.replace``.

    Attributes:
        min_score: proposals whose objectness probability is below this are
            dropped (the best one is kept whatever its score, so every video gets
            at least one event).
        nms_threshold: a proposal whose tIoU with a better-scored kept one
            exceeds this is suppressed.
        max_proposals: the most proposals kept per video.
    """

    min_score: float = 0.5
    nms_threshold: float = 0.5
    max_proposals: int = 10

    def verify(self) -> ProposalOptions:
        """Checks every option at once; returns self for chaining."""
        if not 0 <= self.min_score <= 1:
            raise DensevidError(f"min_score must be in [0, 1]: {self.min_score}")
        if not 0 < self.nms_threshold <= 1:
            raise DensevidError(
                f"nms_threshold must be in (0, 1]: {self.nms_threshold}"
            )
        if self.max_proposals < 1:
            raise DensevidError(f"max_proposals must be >= 1: {self.max_proposals}")
        return self

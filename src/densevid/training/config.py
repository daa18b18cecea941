"""Run configs: one base with what every training run has, one subclass per kind.

``RunConfig`` holds the optimizer, schedule, precision, logging, checkpoint and device
fields that fine-tuning and pretraining share, and checks them once; ``TrainConfig``
and ``PretrainConfig`` add their data, objectives and validation. configs/*.yaml hold
these fields, ``model:`` (a ``ModelConfig``) and, for fine-tuning, ``decoding:`` (the
``DecodingOptions`` validation decodes with) as sections.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Self

from densevid.config import (
    ModelConfig,
    coerce_numbers,
    dataclass_from_dict,
    read_config_dict,
)
from densevid.decoding import DecodingOptions
from densevid.errors import DensevidError
from densevid.pretrain_data import MEAN_SPAN, NOISE_DENSITY

# Keys of configs written before validation's decoding options became a section.
OLD_DECODING_KEYS = {"val_method": "method", "val_beam_size": "beam_size"}


@dataclass
class RunConfig:
    """What every run has; ``output_dir`` receives ``last/``, ``best/``,
    ``tokenizer/``, ``config.json`` (the run's config) and ``log.jsonl``."""

    KIND: ClassVar[str] = "run"  # how errors name the config

    output_dir: str = "runs/run"
    model: ModelConfig = field(default_factory=ModelConfig)
    tokenizer: str = ""  # "" trains a BPE tokenizer on the run's texts
    vocab_size: int = 2000
    max_steps: int = 1000
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 5e-4
    min_lr_ratio: float = 0.05
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    label_smoothing: float = 0.1
    # weight of the frame-event loss (binary cross-entropy, per frame) of a model
    # with model.frame_events, added to the captions' token cross-entropy
    event_loss_weight: float = 1.0
    # weight of the concept loss (asymmetric multi-label, per video and per event)
    # of a model with model.n_concepts > 0 (densevid.concepts)
    concept_loss_weight: float = 1.0
    # weight of the proposal loss (objectness and boundary regression, per frame
    # and anchor) of a model with model.n_proposal_anchors > 0 (densevid.proposals)
    proposal_loss_weight: float = 1.0
    # time-token targets spread over neighbouring bins (Gaussian, sigma in bins):
    # a start one bin off costs less than one fifty bins off; 0 = one-hot
    time_sigma: float = 0.0
    # end to end (a model reading frames, model.visual_encoder): frames per video
    # that go through the visual encoder with gradients each step (chosen at
    # random; the others without; 0: all), the encoder's activations recomputed
    # in the backward pass instead of kept, and its learning rate as a fraction of
    # lr (a pretrained encoder is fine-tuned gently; 0 freezes it)
    frames_in_backward: int = 0
    gradient_checkpointing: bool = False
    encoder_lr_ratio: float = 1.0
    # decay of an exponential moving average of the weights, which is what is
    # validated and saved as OUTPUT/best (OUTPUT/last keeps both); 0 = off
    ema: float = 0.0
    amp: bool = True  # bf16 autocast on CUDA; ignored on CPU
    eval_every: int = 250
    save_every: int = 250
    log_every: int = 25
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    num_threads: int = 0  # torch CPU threads; 0 leaves torch's default
    resume: bool = True  # continue OUTPUT/last when it exists

    def __post_init__(self) -> None:
        if isinstance(self.model, Mapping):
            self.model = ModelConfig.from_dict(dict(self.model))
        coerce_numbers(self)

    def verify(self) -> Self:
        """Checks the whole config at once, naming the bad key."""
        kind = self.KIND
        for name in ("max_steps", "batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise DensevidError(f"{kind}: {name} must be >= 1")
        for name in ("eval_every", "save_every", "log_every", "warmup_steps"):
            if getattr(self, name) < 0:
                raise DensevidError(f"{kind}: {name} must be >= 0")
        if self.lr <= 0 or not 0 <= self.label_smoothing < 1:
            raise DensevidError(f"{kind}: need lr > 0, label_smoothing in [0, 1)")
        if self.time_sigma < 0:
            raise DensevidError(f"{kind}: time_sigma must be >= 0: {self.time_sigma}")
        if self.frames_in_backward < 0 or self.encoder_lr_ratio < 0:
            raise DensevidError(
                f"{kind}: need frames_in_backward >= 0 and encoder_lr_ratio >= 0: "
                f"{self.frames_in_backward}, {self.encoder_lr_ratio}"
            )
        if not 0 <= self.ema < 1:
            raise DensevidError(f"{kind}: ema must be in [0, 1): {self.ema}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise DensevidError(f"{kind}: device must be auto/cpu/cuda: {self.device}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        return dataclass_from_dict(cls, d, cls.KIND)

    @classmethod
    def load(
        cls, path: str | os.PathLike | None, overrides: Sequence[str] = ()
    ) -> Self:
        """A YAML (or JSON) config plus ``key=value`` overrides (dotted for
        sections, values parsed as YAML)."""
        return cls.from_dict(read_config_dict(path, overrides))


@dataclass
class TrainConfig(RunConfig):
    """A fine-tuning run on annotated videos (``densevid train``).

    Paths: ``train_annotations`` / ``val_annotations`` (ActivityNet format; several
    validation files are several reference sets, the first gives inputs and
    likelihood), ``features`` (the FEATURES directory), ``output_dir``.
    """

    KIND: ClassVar[str] = "train config"

    train_annotations: str = ""
    val_annotations: list[str] = field(default_factory=list)
    features: str = ""
    crop: bool = False
    crop_min_fraction: float = 0.5
    # probability of a left-right mirrored training item (pixels features only),
    # with these words swapped both ways in its captions and transcript
    hflip: float = 0.0
    hflip_words: dict[str, str] = field(default_factory=lambda: {"left": "right"})
    # probability of a training item showing its video followed by another one
    # (when both fit in the longest training video): more distinct inputs per epoch
    concat: float = 0.0
    best_metric: str = "SODA_c"
    val_metrics: list[str] = field(
        default_factory=lambda: ["SODA_c", "CIDEr", "METEOR", "Bleu_4", "F1"]
    )
    val_max_videos: int = 0  # 0: all
    # how validation decodes; its max_length is the model's max_target_tokens
    decoding: DecodingOptions = field(
        default_factory=lambda: DecodingOptions(method="greedy")
    )
    val_batch_size: int = 16
    # processes that build the training items (read, sample, mirror, join, pad)
    # ahead of the step; 0: the training process itself
    num_workers: int = 0
    # a checkpoint to fine-tune from (densevid pretrain/train output): architecture,
    # tokenizer and weights come from it (densevid.checkpoint.init_model)
    init: str = ""
    # "ml": maximum likelihood; "scst": self-critical training of an init model on
    # the reward of sampled event sequences against the greedy one's
    # (densevid.training.scst): "soda" or "f1" (densevid.training.rewards)
    objective: str = "ml"
    scst_reward: str = "soda"
    scst_samples: int = 4
    # what a sample's reward is compared with: the greedy decode's ("greedy") or
    # the mean of the video's other samples ("mean"); and the weight of the
    # references' cross-entropy added to the policy loss
    scst_baseline: str = "greedy"
    scst_ml_weight: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.val_annotations, str):
            self.val_annotations = (
                [self.val_annotations] if self.val_annotations else []
            )
        if isinstance(self.decoding, Mapping):
            self.decoding = dataclass_from_dict(
                DecodingOptions, self.decoding, f"{self.KIND}: decoding"
            )
        coerce_numbers(self.decoding)

    def verify(self) -> Self:
        super().verify()
        if not self.train_annotations:
            raise DensevidError(f"{self.KIND}: 'train_annotations' is required")
        if not self.features:
            raise DensevidError(f"{self.KIND}: 'features' (FEATURES dir) is required")
        if self.val_batch_size < 1 or self.num_workers < 0:
            raise DensevidError(
                f"{self.KIND}: need val_batch_size >= 1 and num_workers >= 0"
            )
        if not 0 <= self.concat <= 1 or (self.concat and self.crop):
            raise DensevidError(
                f"{self.KIND}: concat must be in [0, 1] and not combined with crop: "
                f"concat={self.concat}, crop={self.crop}"
            )
        try:
            self.decoding.verify()
        except DensevidError as e:
            raise DensevidError(f"{self.KIND}: decoding: {e}") from None
        if self.objective not in ("ml", "scst"):
            raise DensevidError(
                f"{self.KIND}: objective must be 'ml' or 'scst', got {self.objective!r}"
            )
        if self.objective == "scst":
            if not self.init:
                raise DensevidError(
                    f"{self.KIND}: objective scst fine-tunes a trained model: give "
                    "init (densevid train --init CHECKPOINT)"
                )
            if self.scst_baseline not in ("greedy", "mean") or self.scst_ml_weight < 0:
                raise DensevidError(
                    f"{self.KIND}: scst_baseline must be 'greedy' or 'mean' and "
                    f"scst_ml_weight >= 0, got {self.scst_baseline!r}, "
                    f"{self.scst_ml_weight}"
                )
            if self.scst_reward not in ("soda", "f1") or self.scst_samples < 1:
                raise DensevidError(
                    f"{self.KIND}: scst_reward must be 'soda' or 'f1' and "
                    f"scst_samples >= 1, got {self.scst_reward!r}, {self.scst_samples}"
                )
        return self

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        d = dict(d)
        old = {k: d.pop(k) for k in OLD_DECODING_KEYS if k in d}
        if old:  # configs written before ``decoding:`` was a section
            section = dict(d.get("decoding") or {})
            for key, value in old.items():
                section.setdefault(OLD_DECODING_KEYS[key], value)
            d["decoding"] = section
        return super().from_dict(d)


@dataclass
class PretrainConfig(RunConfig):
    """A pretraining run on narrated videos (``densevid pretrain``).

    ``corpus`` is a FEATURES directory (``<visual>/`` and ``<speech>/`` streams, as
    ``densevid extract`` writes) or webdataset shards (a directory of ``.tar``, a
    glob, ``{000000..000009}`` braces, or a comma list); ``corpus_format`` forces one.
    """

    KIND: ClassVar[str] = "pretrain config"

    output_dir: str = "runs/pretrain"
    eval_every: int = 500
    corpus: str = ""
    corpus_format: str = "auto"  # auto | features | webdataset
    speech: str = "subtitles"  # the transcript stream: asr or subtitles
    tokenizer_samples: int = 5000  # transcript sentences that tokenizer learns from
    # more text for that tokenizer: ActivityNet .json (captions) or .txt files
    tokenizer_texts: list[str] = field(default_factory=list)
    generative_weight: float = 1.0  # 0: denoising only
    denoise_weight: float = 1.0  # 0: generative only
    noise_density: float = NOISE_DENSITY
    mean_span: float = MEAN_SPAN
    heldout_fraction: float = 0.05
    heldout_max_samples: int = 256
    eval_batch_size: int = 16
    num_workers: int = 0
    shuffle_buffer: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.tokenizer_texts, str):
            self.tokenizer_texts = (
                [self.tokenizer_texts] if self.tokenizer_texts else []
            )

    def verify(self) -> Self:
        super().verify()
        kind = self.KIND
        if not self.corpus:
            raise DensevidError(f"{kind}: 'corpus' is required")
        if self.corpus_format not in ("auto", "features", "webdataset"):
            raise DensevidError(
                f"{kind}: corpus_format must be auto, features or webdataset"
            )
        if not self.speech:
            raise DensevidError(f"{kind}: 'speech' (asr/subtitles) is required")
        if self.eval_batch_size < 1:
            raise DensevidError(f"{kind}: eval_batch_size must be >= 1")
        if self.num_workers < 0 or self.heldout_max_samples < 0:
            raise DensevidError(f"{kind}: num_workers, heldout_* must be >= 0")
        if not 0 < self.noise_density < 1 or self.mean_span < 1:
            raise DensevidError(
                f"{kind}: need 0 < noise_density < 1 and mean_span >= 1"
            )
        if not 0 <= self.heldout_fraction < 1:
            raise DensevidError(f"{kind}: need heldout_fraction in [0, 1)")
        weights = (self.generative_weight, self.denoise_weight)
        if min(weights) < 0 or max(weights) == 0:
            raise DensevidError(
                f"{kind}: need generative_weight, denoise_weight >= 0 and one of "
                "them > 0 (0 leaves that objective out)"
            )
        return self


def load_config(
    path: str | os.PathLike | None, overrides: Sequence[str] = ()
) -> TrainConfig:
    """A fine-tuning config from YAML plus ``key=value`` overrides."""
    return TrainConfig.load(path, overrides)


def load_pretrain_config(
    path: str | os.PathLike | None, overrides: Sequence[str] = ()
) -> PretrainConfig:
    """A pretraining config from YAML plus ``key=value`` overrides."""
    return PretrainConfig.load(path, overrides)

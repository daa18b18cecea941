"""Training the matching model (``densevid train-matcher``): an ``Objective`` of the
shared loop.

Pairs: every annotated event of the training videos (its frames against its
caption) and, with ``narration`` set, every timed sentence of the training videos'
transcript against the frames it is spoken over (free, noisy pairs: a narrator
paraphrases some events a little late or early, and chatters between them).
Loss: symmetric InfoNCE over the batch, a repeated caption counting as a match
(``densevid.matcher.contrastive_loss``). Validation: the same loss over the
validation events in fixed batches, and caption-to-event recall at 1 and 5 among
all validation events by the pooled vectors (an event with the same caption counts
as found). With ``model.hierarchical`` the loss adds the InfoNCE of the fine
word-frame scores (``densevid.matcher.matching_loss``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch

from densevid.config import coerce_numbers
from densevid.errors import DensevidError
from densevid.events import VideoEvents, load_annotations
from densevid.matcher import (
    MatcherConfig,
    MatchingModel,
    event_frames,
    load_matcher,
    matching_loss,
    normalize_text,
    save_matcher,
)
from densevid.text import train_tokenizer
from densevid.training.config import RunConfig
from densevid.training.distributed import barrier
from densevid.training.finetune import epoch_of, step_indices
from densevid.training.loop import Objective, Part, RunContext, run

logger = logging.getLogger(__name__)

VAL_BATCH = 256  # validation loss over fixed batches of this many pairs


@dataclass
class MatcherTrainConfig(RunConfig):
    """A matcher run: ``model:`` is a ``MatcherConfig``; ``features`` the FEATURES
    directory with its stream (and ``narration``'s, when set)."""

    KIND: ClassVar[str] = "matcher config"

    output_dir: str = "runs/matcher"
    model: MatcherConfig = field(default_factory=MatcherConfig)  # type: ignore[assignment]
    train_annotations: str = ""
    val_annotations: str = ""
    features: str = ""
    # a speech stream (subtitles or asr) of the training videos: its timed sentences
    # join the pairs, each against the frames it is spoken over; "" = captions only
    narration: str = ""
    vocab_size: int = 1000
    max_steps: int = 1500
    batch_size: int = 256
    lr: float = 1e-3
    warmup_steps: int = 100
    eval_every: int = 500
    save_every: int = 500
    log_every: int = 100

    def __post_init__(self) -> None:
        if isinstance(self.model, Mapping):
            self.model = MatcherConfig.from_dict(dict(self.model))
        super().__post_init__()
        coerce_numbers(self.model)

    def verify(self) -> Self:
        super().verify()
        if not self.train_annotations or not self.features:
            raise DensevidError(
                f"{self.KIND}: 'train_annotations' and 'features' are required"
            )
        self.model.verify()
        return self


@dataclass
class Pairs:
    """Frames, lengths, token ids and caption groups of (event, sentence) pairs."""

    video_ids: list[str]
    frames: np.ndarray  # (N, n_frames, input_dim) float32
    lengths: np.ndarray  # (N,) seconds
    texts: list[str]
    ids: torch.Tensor | None = None  # (N, L)
    mask: torch.Tensor | None = None  # (N, L)
    groups: torch.Tensor | None = None  # (N,) one id per distinct sentence

    def __len__(self) -> int:
        return len(self.texts)

    def encode(self, tokenizer: Any, max_tokens: int) -> None:
        enc = tokenizer(
            [normalize_text(t) for t in self.texts],
            padding="max_length",
            truncation=True,
            max_length=max_tokens,
            return_tensors="pt",
        )
        self.ids, self.mask = enc["input_ids"], enc["attention_mask"].bool()
        names: dict[str, int] = {}
        self.groups = torch.tensor(
            [names.setdefault(normalize_text(t), len(names)) for t in self.texts]
        )

    def batch(self, index: list[int] | np.ndarray, device: torch.device) -> dict:
        assert (
            self.ids is not None and self.mask is not None and self.groups is not None
        )
        index = np.asarray(index)
        mask = self.mask[index]
        width = max(1, int(mask.sum(1).max()))
        return {
            "video_ids": [self.video_ids[i] for i in index],
            "frames": torch.from_numpy(self.frames[index]).to(device),
            "lengths": torch.from_numpy(self.lengths[index]).to(device),
            "ids": self.ids[index, :width].to(device),
            "mask": mask[:, :width].to(device),
            "groups": self.groups[index].to(device),
        }


def load_pairs(
    videos: Mapping[str, VideoEvents],
    features: str,
    config: MatcherConfig,
    narration: str = "",
) -> tuple[Pairs, dict[str, Any]]:
    """The pairs of annotated videos (and their transcript's sentences), and the
    stream's extraction options (from the first video's sidecar)."""
    from densevid.features.cache import load_features, load_speech

    ids: list[str] = []
    frames: list[np.ndarray] = []
    lengths: list[float] = []
    texts: list[str] = []
    options: dict[str, Any] = {}
    for vid, video in videos.items():
        array, meta = load_features(features, config.features, vid)
        options = options or {config.features: meta.get("config", {})}
        duration = video.duration or float(meta.get("duration") or 0.0)
        spans = [(e.start, e.end, e.text) for e in video.events]
        if narration:
            spans += [
                (s["start"], s["end"], s["text"])
                for s in load_speech(features, narration, vid)
            ]
        spans = [s for s in spans if s[2].strip()]
        if not spans:
            continue
        where = f"{features}/{config.features}"
        frames.append(
            event_frames(array, meta, duration, [s[:2] for s in spans], config, where)
        )
        ids += [vid] * len(spans)
        lengths += [max(0.0, e - s) for s, e, _ in spans]
        texts += [t for _, _, t in spans]
    if not texts:
        raise DensevidError("train-matcher: no events with captions to train on")
    return (
        Pairs(ids, np.concatenate(frames), np.asarray(lengths, np.float32), texts),
        options,
    )


class MatchObjective(Objective):
    """Contrastive matching of event frames and sentences."""

    desc = "train-matcher"
    best_metric = "loss"

    def __init__(self, cfg: MatcherTrainConfig) -> None:
        self.cfg = cfg
        self.train: Pairs | None = None
        self.val: Pairs | None = None
        self.options: dict[str, Any] = {}

    def _load(self) -> Pairs:
        if self.train is None:
            cfg = self.cfg
            videos = load_annotations(cfg.train_annotations)
            self.train, self.options = load_pairs(
                videos, cfg.features, cfg.model, cfg.narration
            )
            logger.info(
                "%d training pairs from %d videos", len(self.train), len(videos)
            )
        return self.train

    def build_model(self, ctx: RunContext) -> MatchingModel:
        cfg, train = self.cfg, self._load()
        tok_dir = ctx.out / "tokenizer"
        if ctx.dist.main and not (tok_dir / "tokenizer_config.json").is_file():
            train_tokenizer(
                [normalize_text(t) for t in train.texts],
                tok_dir,
                vocab_size=cfg.vocab_size,
            )
        barrier(ctx.dist)
        from densevid.text import load_tokenizer

        tokenizer = load_tokenizer(tok_dir)
        mc = MatcherConfig.from_dict(cfg.model.to_dict())
        mc.input_dim = int(train.frames.shape[2])
        mc.vocab_size = len(tokenizer)
        mc.pad_id = int(tokenizer.pad_token_id)
        mc.extractor_options = self.options
        model = MatchingModel(mc)
        model.tokenizer = tokenizer
        rows = train.frames.reshape(-1, mc.input_dim)
        model.set_input_stats(rows.mean(0), rows.std(0))
        return model

    def load(self, path: Path) -> MatchingModel:
        return load_matcher(path)

    def save(self, model: torch.nn.Module, path: Path) -> None:
        save_matcher(model, path)  # type: ignore[arg-type]

    def prepare(self, model: MatchingModel, ctx: RunContext, resuming: bool) -> None:
        cfg, train = self.cfg, self._load()
        if train.frames.shape[2] != model.config.input_dim:
            raise DensevidError(
                f"{cfg.features}/{model.config.features}: features are "
                f"{train.frames.shape[2]}-d but the matcher reads "
                f"{model.config.input_dim}-d (other blocks or options?)"
            )
        self.ctx = ctx
        train.encode(model.tokenizer, model.config.max_tokens)
        if cfg.val_annotations and ctx.dist.main:
            videos = load_annotations(cfg.val_annotations)
            self.val, _ = load_pairs(videos, cfg.features, model.config)
            self.val.encode(model.tokenizer, model.config.max_tokens)

    def micro_batches(self, step: int) -> Iterator[list[Part]]:
        train, dist = self._load(), self.ctx.dist
        epoch_of(len(train), step, self.cfg, dist)  # raises if a step needs more
        for index in step_indices(len(train), step, self.cfg, dist):
            yield [Part("", train.batch(index, self.ctx.device))]

    def loss(
        self, net: torch.nn.Module, batch: dict[str, Any], cfg: Any
    ) -> tuple[torch.Tensor, int]:
        out = net(batch["frames"], batch["lengths"], batch["ids"], batch["mask"])
        return matching_loss(out, batch["groups"]), len(out["video"])

    @torch.no_grad()
    def evaluate(self, model: MatchingModel) -> dict[str, float] | None:
        if self.val is None:
            return None
        model.eval()
        val, device = self.val, model.device
        losses, videos, texts = [], [], []
        for lo in range(0, len(val), VAL_BATCH):
            b = val.batch(np.arange(lo, min(lo + VAL_BATCH, len(val))), device)
            out = model(b["frames"], b["lengths"], b["ids"], b["mask"])
            losses.append(float(matching_loss(out, b["groups"])))
            videos.append(out["video"])
            texts.append(out["text"])
        model.train()
        sims = torch.cat(texts) @ torch.cat(videos).T  # (N text, N events)
        assert val.groups is not None
        groups = val.groups.to(device)
        same = groups[:, None] == groups[None, :]  # (N, N)
        best_right = sims.masked_fill(~same, -2).max(1).values  # best matching event
        rank = (sims.masked_fill(same, -2) > best_right[:, None]).sum(1)  # (N,)
        return {
            "loss": float(np.mean(losses)),
            "R@1": float((rank < 1).float().mean()),
            "R@5": float((rank < 5).float().mean()),
        }


def train_matcher(
    cfg: MatcherTrainConfig,
    *,
    verbose: bool = False,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Trains (or resumes) a matcher run; ``output_dir`` receives ``best/`` (the
    lowest validation loss, or the last weights without validation), ``last/``,
    ``tokenizer/``, ``config.json`` and ``log.jsonl``.
    """
    cfg.verify()
    return run(cfg, MatchObjective(cfg), verbose=verbose, on_step=on_step)


def load_matcher_config(
    path: str | None, overrides: list[str] = ()
) -> MatcherTrainConfig:  # type: ignore[assignment]
    """A matcher run's config from YAML plus ``key=value`` overrides."""
    return MatcherTrainConfig.load(path, overrides)

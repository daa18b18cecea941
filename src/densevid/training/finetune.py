"""Fine-tuning on annotated videos: the objective of ``densevid train``.

Data: ``VideoDataset`` over the annotations and the feature cache (with crop, mirror
and concatenation augmentations), one seeded permutation of the training set per
epoch, so an item does not depend on which process loads it or on resuming.
Validation: the validation videos decoded with ``TrainConfig.decoding``, scored by
``densevid.metrics`` and the references' log-likelihood; ``best_metric`` picks
``OUTPUT/best``.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import torch

from densevid.checkpoint import init_model
from densevid.concepts import concept_vocabulary
from densevid.config import ModelConfig
from densevid.data import VideoDataset
from densevid.decoding import decode_dataset
from densevid.domain import fit_domain_stats
from densevid.errors import DensevidError
from densevid.events import VideoEvents, load_annotations
from densevid.inputs import collate, to_device
from densevid.model import DenseVideoModel, build_model
from densevid.proposals import anchor_lengths
from densevid.text import TimeTokenizer, train_tokenizer
from densevid.training.config import TrainConfig
from densevid.training.distributed import Dist
from densevid.training.loop import Objective, Part, RunContext, prepare_tokenizer

logger = logging.getLogger(__name__)


def step_indices(
    n_items: int, step: int, cfg: TrainConfig, dist: Dist
) -> list[list[int]]:
    """This process's micro-batches (dataset indices) for optimizer step ``step``.

    One seeded permutation per epoch; a step takes the next
    ``batch_size * grad_accum * world`` items; micro-batch ``m`` of rank ``r`` is the
    slice ``[(m * world + r) * batch_size, ...)`` of that chunk.
    """
    per_step = cfg.batch_size * cfg.grad_accum * dist.world
    steps_per_epoch = n_items // per_step
    if steps_per_epoch == 0:
        raise DensevidError(
            f"training set has {n_items} videos, fewer than one step needs "
            f"(batch_size x grad_accum x processes = {per_step})"
        )
    epoch, k = divmod(step, steps_per_epoch)
    g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
    perm = torch.randperm(n_items, generator=g).tolist()
    chunk = perm[k * per_step : (k + 1) * per_step]
    out = []
    for m in range(cfg.grad_accum):
        lo = (m * dist.world + dist.rank) * cfg.batch_size
        out.append(chunk[lo : lo + cfg.batch_size])
    return out


def epoch_of(n_items: int, step: int, cfg: TrainConfig, dist: Dist) -> int:
    return step // max(1, n_items // (cfg.batch_size * cfg.grad_accum * dist.world))


def validate(
    model: DenseVideoModel,
    dataset: VideoDataset,
    references: list[dict[str, VideoEvents]],
    cfg: TrainConfig,
) -> dict[str, float]:
    """Decodes the validation videos, scores them with ``densevid.metrics.evaluate``
    and adds the references' per-token log-likelihood and perplexity."""
    options = replace(cfg.decoding, max_length=cfg.model.max_target_tokens)
    preds, stats = decode_dataset(
        model, dataset, options, batch_size=cfg.val_batch_size
    )
    scores = dict(stats.to_dict())
    n_events = sum(len(v) for v in preds.values())
    scores["events_per_video"] = n_events / max(len(preds), 1)
    wanted = [m for m in cfg.val_metrics if m not in ("log_likelihood", "perplexity")]
    if wanted:
        try:
            from densevid.metrics import evaluate
        except ImportError as e:
            logger.warning("densevid.metrics unavailable (%s): likelihood only", e)
        else:
            refs = [{k: r[k] for k in preds if k in r} for r in references]
            scores.update(evaluate(preds, refs, metrics=tuple(wanted)))
    return scores


class EpochItems(torch.utils.data.Dataset):
    """A ``VideoDataset`` read by (epoch, index) keys: a data-loader worker holds
    its own copy of the dataset, so the key carries the epoch its step is in."""

    def __init__(self, data: VideoDataset) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        epoch, index = key
        self.data.set_epoch(epoch)
        return self.data[index]


class Finetune(Objective):
    """Captions of annotated videos; validated by decoding and scoring."""

    desc = "train"

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.best_metric = cfg.best_metric
        self.train_videos = load_annotations(cfg.train_annotations)
        self.val_refs = [load_annotations(p) for p in cfg.val_annotations]
        self.train_set: VideoDataset | None = None
        self.batches: Iterator[dict[str, Any]] | None = None  # num_workers > 0
        self.val_set: VideoDataset | None = None

    def build_model(self, ctx: RunContext) -> DenseVideoModel:
        cfg = self.cfg
        if cfg.init:
            model_cfg = self._with_heads(replace(cfg.model))
            if model_cfg.reads_frames:  # the encoder's input comes from the data
                model_cfg = replace(model_cfg, frame_shape=self._frame_shape())
            model = init_model(cfg.init, model_cfg, tokenizer=cfg.tokenizer)
            logger.info("fine-tuning from %s", cfg.init)
            self._record_inputs(model.config, model.time_tokenizer)
            return model

        def train(tok_dir: Any) -> None:
            captions = [e.text for v in self.train_videos.values() for e in v.events]
            train_tokenizer(
                captions,
                tok_dir,
                vocab_size=cfg.vocab_size,
                n_time_tokens=cfg.model.n_time_tokens,
            )

        tokenizer = prepare_tokenizer(cfg, ctx, train)
        model_cfg = self._with_heads(ModelConfig.from_dict(asdict(cfg.model)))
        tt = TimeTokenizer(tokenizer, model_cfg.n_time_tokens)
        probe = self._probe(model_cfg, tt)
        if model_cfg.reads_frames:  # visual_dim: the encoder's, once it is built
            model_cfg.frame_shape = self._frame_shape()
        else:
            model_cfg.visual_dim = probe.feature_dim(model_cfg.visual_features)
        if len(model_cfg.visual_streams) > 1:
            model_cfg.visual_stream_dims = [
                probe.feature_dim(name) for name in model_cfg.visual_streams
            ]
        if model_cfg.audio_features:
            model_cfg.audio_dim = probe.feature_dim(model_cfg.audio_features)
        self._record_inputs(model_cfg, tt)
        model = build_model(model_cfg, tokenizer)
        if model_cfg.standardize:
            model.visual.set_input_stats(*probe.input_stats(model_cfg.visual_features))
            if model.audio is not None:
                model.audio.set_input_stats(
                    *probe.input_stats(model_cfg.audio_features)
                )
        return model

    def _frame_shape(self) -> list[int]:
        """The (substeps, size, size, 3) rows of the run's frames stream."""
        from densevid.features.cache import load_features
        from densevid.features.frames import frame_shape

        video_id = next(iter(self.train_videos))
        meta = load_features(self.cfg.features, "frames", video_id)[1]
        return frame_shape(meta, f"{self.cfg.features}/frames")

    def _with_heads(self, model_cfg: ModelConfig) -> ModelConfig:
        """The concept head's vocabulary and the proposal head's anchor lengths,
        from the training captions and events (in place; returns it)."""
        if model_cfg.n_concepts > 0:
            captions = [e.text for v in self.train_videos.values() for e in v.events]
            model_cfg.concepts, model_cfg.caption_idf = concept_vocabulary(
                captions, model_cfg.n_concepts
            )
        if model_cfg.n_proposal_anchors > 0:
            model_cfg.proposal_anchors = anchor_lengths(
                [
                    (e.end - e.start) / float(v.duration)
                    for v in self.train_videos.values()
                    for e in v.events
                ],
                model_cfg.n_proposal_anchors,
            )
        return model_cfg

    def _probe(self, model_cfg: ModelConfig, tt: TimeTokenizer) -> VideoDataset:
        return VideoDataset(
            self.train_videos, self.cfg.features, model_cfg, tt, cache=False
        )

    def _record_inputs(self, model_cfg: ModelConfig, tt: TimeTokenizer) -> None:
        """What ``densevid caption`` needs to treat a new video alike: the options
        the features were made with, the longest training video, and the
        statistics that tell a video unlike the training ones."""
        model_cfg.extractor_options = self._probe(model_cfg, tt).extractor_options()
        model_cfg.max_duration = max(
            float(v.duration) for v in self.train_videos.values()
        )
        if not model_cfg.reads_frames:  # raw pixels: no feature range to check
            model_cfg.domain_stats = self.domain_stats(
                self.cfg.features, model_cfg.visual_streams[0], list(self.train_videos)
            )

    @staticmethod
    def domain_stats(
        features: str | os.PathLike, extractor: str, video_ids: Sequence[str]
    ) -> dict[str, Any]:
        """``ModelConfig.domain_stats`` of training features: every block of each
        video's stream as extracted (``densevid.domain`` says why all blocks, not
        only those the model reads); of the first stream when the model joins
        several."""
        from densevid.features.cache import load_features

        def load(i: int) -> np.ndarray:
            return np.asarray(load_features(features, extractor, video_ids[i])[0])

        stats = fit_domain_stats(load, len(video_ids), extractor)
        logger.info(
            "domain statistics of %d training videos (%s): out-of-domain above %.4f",
            stats.n_videos,
            extractor,
            stats.threshold,
        )
        return stats.to_dict()

    def prepare(self, model: DenseVideoModel, ctx: RunContext, resuming: bool) -> None:
        cfg, model_cfg, tt = self.cfg, model.config, model.time_tokenizer
        probe = self._probe(model_cfg, tt)
        streams = [(model_cfg.visual_features, model_cfg.input_dim)]
        if model_cfg.use_audio:
            streams.append((model_cfg.audio_features, model_cfg.audio_dim))
        for name, dim in streams:
            if probe.feature_dim(name) != dim:
                raise DensevidError(
                    f"{cfg.features}/{name}: features are {probe.feature_dim(name)}-d "
                    f"but the model reads {dim}-d (extracted with other options?)"
                )
        self.ctx = ctx
        self.pad_id = tt.pad_id
        self.train_set = VideoDataset(
            self.train_videos,
            cfg.features,
            model_cfg,
            tt,
            crop=cfg.crop,
            crop_min_fraction=cfg.crop_min_fraction,
            hflip=cfg.hflip,
            hflip_words=cfg.hflip_words,
            concat=cfg.concat,
            seed=cfg.seed,
        )
        if self.val_refs and ctx.dist.main:
            first = self.val_refs[0]
            if cfg.val_max_videos:
                first = dict(list(first.items())[: cfg.val_max_videos])
            self.val_set = VideoDataset(first, cfg.features, model_cfg, tt)

    def start(self, step: int) -> None:
        """With ``num_workers``, a DataLoader whose workers build the items of
        every step from ``step`` on, ahead of the loop (frames decoded from the
        cache, sampled, mirrored and joined off the training process)."""
        assert self.train_set is not None, "prepare() comes first"
        self.batches = None
        if self.cfg.num_workers == 0:
            return
        loader = torch.utils.data.DataLoader(
            EpochItems(self.train_set),
            batch_sampler=self._keys(step),
            collate_fn=functools.partial(collate, pad_id=self.pad_id),
            num_workers=self.cfg.num_workers,
            # the workers' seed comes from this generator, not the global one
            # that dropout resumes from
            generator=torch.Generator().manual_seed(self.cfg.seed),
        )
        self.batches = iter(loader)

    def _keys(self, step: int) -> Iterator[list[tuple[int, int]]]:
        """(epoch, index) keys of this process's micro-batches from ``step`` on."""
        n, cfg, dist = len(self.train_set), self.cfg, self.ctx.dist  # type: ignore[arg-type]
        for s in range(step, cfg.max_steps):
            epoch = epoch_of(n, s, cfg, dist)
            for indices in step_indices(n, s, cfg, dist):
                yield [(epoch, i) for i in indices]

    def micro_batches(self, step: int) -> Iterator[list[Part]]:
        assert self.train_set is not None, "prepare() comes first"
        if self.batches is not None:
            for _ in range(self.cfg.grad_accum):
                batch = next(self.batches)
                yield [Part("", to_device(batch, self.ctx.device))]
            return
        data, dist = self.train_set, self.ctx.dist
        data.set_epoch(epoch_of(len(data), step, self.cfg, dist))
        for indices in step_indices(len(data), step, self.cfg, dist):
            batch = collate([data[i] for i in indices], self.pad_id)
            yield [Part("", to_device(batch, self.ctx.device))]

    def evaluate(self, model: DenseVideoModel) -> dict[str, float] | None:
        if self.val_set is None:
            return None
        return validate(model, self.val_set, self.val_refs, self.cfg)

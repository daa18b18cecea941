"""Pretraining on narrated videos, transcripts as free labels: the objective of
``densevid pretrain``.

Vid2Seq's recipe (docs/design.md, "The joint model"): the timed sentences of a video's
speech (``asr`` or ``subtitles`` from ``densevid extract``) become pseudo events, so a
corpus with no annotations at all trains the model to localise and describe. Two
objectives per video, two weighted parts of every micro-batch of the shared loop:

- generative: frames in (the speech stream empty), the time-tokenised transcript
  ``<t_s> <t_e> sentence ... </s>`` out;
- denoising: frames plus the transcript with T5 span corruption (``noise_density`` of
  its tokens in spans of mean length ``mean_span``, each span replaced by a sentinel
  ``<extra_id_k>``) in through the LM encoder's speech path; the masked spans, each
  after its sentinel, out.

``loss = generative_weight x generative + denoise_weight x denoising``, both
logged; a weight of 0 leaves that objective out (the frame-event head's loss goes
with the generative one). Per-token log-likelihood (and perplexity) of both targets
on a held-out part of the corpus.
Checkpoints have fine-tuning's format, so ``densevid train --init DIR`` fine-tunes
from them (``densevid.checkpoint.init_model``). Corpora and their streaming are in
``densevid.shards``; span corruption and the training items in
``densevid.pretrain_data``.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from densevid.config import ModelConfig
from densevid.data import feature_stats
from densevid.errors import DensevidError
from densevid.events import load_annotations
from densevid.inputs import model_inputs, to_device
from densevid.model import (
    DenseVideoModel,
    build_model,
    perplexity,
    token_log_likelihood,
)
from densevid.pretrain_data import (
    Collator,
    PretrainTransform,
    collate_pretrain,
    ensure_sentinels,
)
from densevid.shards import (
    CorpusSource,
    CorpusStream,
    FeatureDirSource,
    ShardSource,
    heldout_samples,
    is_heldout,
)
from densevid.text import train_tokenizer
from densevid.training.config import PretrainConfig
from densevid.training.loop import Objective, Part, RunContext, prepare_tokenizer, run

logger = logging.getLogger(__name__)

ASCII_ALPHABET = [chr(c) for c in range(33, 127)]  # printable, always in the BPE
# the names the two objectives' losses are reported under
PART_NAMES = {"generative": "gen_loss", "denoising": "den_loss"}


def open_corpus(cfg: PretrainConfig, model: ModelConfig) -> CorpusSource:
    """The corpus source the config names (features directory or shards)."""
    if len(model.visual_streams) > 1:
        raise DensevidError(
            f"{cfg.KIND}: pretraining reads one visual stream, not "
            f"{model.visual_features}"
        )
    kind = cfg.corpus_format
    if kind == "auto":
        p = Path(cfg.corpus)
        kind = "features" if (p / model.visual_features).is_dir() else "webdataset"
    if kind == "features":
        return FeatureDirSource(
            cfg.corpus,
            model.visual_features,
            cfg.speech,
            model.audio_features,
            blocks=model.visual_blocks,
        )
    return ShardSource(
        cfg.corpus,
        model.visual_features,
        cfg.speech,
        model.audio_features,
        blocks=model.visual_blocks,
    )


def _training_samples(
    source: CorpusSource, fraction: float
) -> Iterator[dict[str, Any]]:
    """The corpus's raw samples in order, the held-out ones left out."""
    for unit in source.units:
        for raw in source.read(unit):
            if not is_heldout(raw["__key__"], fraction):
                yield raw


def _train_tokenizer(cfg: PretrainConfig, source: CorpusSource, tok_dir: Path) -> None:
    """A BPE tokenizer from the transcripts of the first training samples, plus
    ``tokenizer_texts`` and every printable ASCII character (so text unlike the
    transcripts, e.g. capitalised captions, never maps to ``<unk>``)."""
    texts: list[str] = []
    for raw in _training_samples(source, cfg.heldout_fraction):
        try:
            texts += [s["text"] for s in source.transcript(raw)]
        except DensevidError as e:
            logger.warning("tokenizer: skipping sample: %s", e)
        if len(texts) >= cfg.tokenizer_samples:
            break
    texts += read_texts(cfg.tokenizer_texts)
    texts.append(" ".join(ASCII_ALPHABET))
    train_tokenizer(
        texts, tok_dir, vocab_size=cfg.vocab_size, n_time_tokens=cfg.model.n_time_tokens
    )


def read_texts(paths: Sequence[str]) -> list[str]:
    """Captions of ActivityNet-format ``.json`` files, or lines of text files."""
    texts: list[str] = []
    for path in paths:
        if str(path).endswith(".json"):
            videos = load_annotations(path)
            texts += [e.text for v in videos.values() for e in v.events]
        else:
            try:
                lines = Path(path).read_text(encoding="utf-8").splitlines()
            except OSError as e:
                raise DensevidError(f"{path}: cannot read tokenizer texts ({e})") from e
            texts += [line for line in lines if line.strip()]
    return texts


def _first_video(source: CorpusSource, fraction: float) -> Any:
    for raw in _training_samples(source, fraction):
        return source.decode(raw)
    raise DensevidError("pretraining corpus has no training samples")


STATS_SAMPLES = 500  # training samples the input mean and std are taken from


def _set_input_stats(
    model: DenseVideoModel, source: CorpusSource, fraction: float
) -> None:
    """``ModelConfig.standardize``: mean and std of the first training samples."""
    visual, audio = [], []
    for raw in _training_samples(source, fraction):
        video = source.decode(raw)
        visual.append(video.visual)
        if video.audio is not None:
            audio.append(video.audio)
        if len(visual) >= STATS_SAMPLES:
            break
    model.visual.set_input_stats(*feature_stats(visual))
    if model.audio is not None:
        model.audio.set_input_stats(*feature_stats(audio))


def skip_for_resume(
    step: int, grad_accum: int, batch_size: int, rank: int, n_workers: int
) -> Callable[[int, int], int]:
    """Per-slot samples consumed after ``step`` optimizer steps.

    A DataLoader takes batches from its workers in turn, so after ``C`` batches
    worker ``w`` has given ``ceil((C - w) / W)`` of them.
    """
    consumed = step * grad_accum

    def skip(slot: int, n_slots: int) -> int:
        w = slot - rank * max(n_workers, 1)
        n_batches = max(0, -(-(consumed - w) // max(n_workers, 1)))
        return n_batches * batch_size

    return skip


@torch.no_grad()
def evaluate_heldout(
    model: DenseVideoModel,
    items: Sequence[dict[str, Any]],
    batch_size: int,
    pad_id: int,
) -> dict[str, float]:
    """Per-token log-likelihood and perplexity of both targets on held-out items."""
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    try:
        for i in range(0, len(items), batch_size):
            batches = collate_pretrain(items[i : i + batch_size], pad_id)
            for name, batch in batches.items():
                batch = to_device(batch, model.device)
                logits = model(batch["labels"], **model_inputs(batch))
                s, n = token_log_likelihood(logits, batch["labels"])
                sums[name] = sums.get(name, 0.0) + float(s.sum())
                counts[name] = counts.get(name, 0) + int(n.sum())
    finally:
        model.train(was_training)
    out: dict[str, float] = {"n_videos": float(len(items))}
    for name, s in sums.items():
        short = "gen" if name == "generative" else "den"
        out[f"{short}_log_likelihood"] = s / max(counts[name], 1)
        out[f"{short}_perplexity"] = perplexity(s, counts[name])
    return out


class _IterableAdapter(torch.utils.data.IterableDataset):
    """Presents a CorpusStream to the DataLoader as an IterableDataset."""

    def __init__(self, stream: Any) -> None:
        super().__init__()
        self.stream = stream

    def __iter__(self):
        return iter(self.stream)


class Pretrain(Objective):
    """Generative and denoising targets from each video's transcript; evaluated by
    the held-out log-likelihood of the generative one (of the denoising one when
    only it is trained)."""

    desc = "pretrain"
    loss_names = ("gen_loss", "den_loss")
    eval_key = "heldout"
    best_metric = "gen_log_likelihood"

    def __init__(self, cfg: PretrainConfig) -> None:
        self.cfg = cfg
        self.denoise = cfg.denoise_weight > 0
        self.generate = cfg.generative_weight > 0
        if not self.generate:
            self.loss_names = ("den_loss",)
            self.best_metric = "den_log_likelihood"
        model_cfg = ModelConfig.from_dict(asdict(cfg.model))
        # the denoising input goes through the LM encoder's speech path
        model_cfg.speech_features = cfg.speech if self.denoise else ""
        self.model_cfg = model_cfg
        self.source = open_corpus(cfg, model_cfg)
        self.heldout: list[dict[str, Any]] = []
        self.stream: CorpusStream | None = None

    def build_model(self, ctx: RunContext) -> DenseVideoModel:
        cfg, source = self.cfg, self.source
        tokenizer = prepare_tokenizer(
            cfg, ctx, lambda tok_dir: _train_tokenizer(cfg, source, tok_dir)
        )
        ensure_sentinels(tokenizer)
        model_cfg = ModelConfig.from_dict(asdict(self.model_cfg))
        first = _first_video(source, cfg.heldout_fraction)
        model_cfg.visual_dim = int(first.visual.shape[1])
        if model_cfg.audio_features:
            if first.audio is None:
                raise DensevidError(f"{first.key}: no audio features")
            model_cfg.audio_dim = int(first.audio.shape[1])
        model = build_model(model_cfg, tokenizer)
        if model_cfg.standardize:
            _set_input_stats(model, source, cfg.heldout_fraction)
        return model

    def prepare(self, model: DenseVideoModel, ctx: RunContext, resuming: bool) -> None:
        cfg = self.cfg
        sentinels = ensure_sentinels(model.tokenizer)
        if len(model.tokenizer) > model.config.vocab_size:
            raise DensevidError(
                f"tokenizer has {len(model.tokenizer)} tokens, the model "
                f"{model.config.vocab_size}: add sentinels before building the model"
            )
        self.ctx = ctx
        self.tt = model.time_tokenizer
        self.transform = PretrainTransform(
            model.config,
            self.tt,
            sentinels,
            denoise=self.denoise,
            noise_density=cfg.noise_density,
            mean_span=cfg.mean_span,
        )

    def start(self, step: int) -> None:
        cfg, dist = self.cfg, self.ctx.dist
        self.stream = CorpusStream(
            self.source,
            self.transform,
            rank=dist.rank,
            world=dist.world,
            seed=cfg.seed,
            shuffle_buffer=cfg.shuffle_buffer,
            heldout_fraction=cfg.heldout_fraction,
            skip=skip_for_resume(
                step, cfg.grad_accum, cfg.batch_size, dist.rank, cfg.num_workers
            ),
        )
        loader = torch.utils.data.DataLoader(
            _IterableAdapter(self.stream),
            batch_size=cfg.batch_size,
            collate_fn=Collator(self.tt.pad_id),
            num_workers=cfg.num_workers,
            # starting to iterate draws a seed for the workers: from its own
            # generator, not the global one that dropout resumes from
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        if dist.main and cfg.eval_every >= 0 and cfg.heldout_fraction > 0:
            for raw in heldout_samples(
                self.source, cfg.heldout_fraction, cfg.heldout_max_samples
            ):
                key_rng = np.random.default_rng(zlib.crc32(raw["__key__"].encode()))
                item = self.stream.decode(raw, key_rng)
                if item is not None:
                    self.heldout.append(item)
            logger.info("%d held-out videos for evaluation", len(self.heldout))
        self.batches = iter(loader)

    def micro_batches(self, step: int) -> Iterator[list[Part]]:
        weights = {
            "generative": self.cfg.generative_weight,
            "denoising": self.cfg.denoise_weight,
        }
        for _ in range(self.cfg.grad_accum):
            parts = next(self.batches)
            yield [
                Part(PART_NAMES[name], to_device(batch, self.ctx.device), weights[name])
                for name, batch in parts.items()
                if weights[name] > 0
            ]

    def evaluate(self, model: DenseVideoModel) -> dict[str, float] | None:
        if not self.heldout:
            return None
        return evaluate_heldout(
            model, self.heldout, self.cfg.eval_batch_size, self.tt.pad_id
        )

    def summary(self) -> dict[str, Any]:
        assert self.stream is not None
        # counted in this process only: unknown when workers decode
        n_bad = self.stream.n_bad if self.cfg.num_workers == 0 else None
        return {"skipped_samples": n_bad}


def pretrain(
    cfg: PretrainConfig,
    *,
    verbose: bool = False,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Pretrains (or resumes) a run; returns a summary (losses, held-out scores).

    Args:
        cfg: the run; ``output_dir`` receives ``last/``, ``best/`` (best held-out
            generative log-likelihood), ``tokenizer/``, ``config.json``, ``log.jsonl``.
        verbose: a tqdm progress bar on the main process.
        on_step: called after each optimizer step with (step, {"loss", "gen_loss",
            "den_loss", "lr"}).
    """
    cfg.verify()
    return run(cfg, Pretrain(cfg), verbose=verbose, on_step=on_step)

"""Pretraining the joint model on narrated videos: transcripts as free labels.

Vid2Seq's recipe (DESIGN.md, "The joint model"): the timed sentences of a video's
speech (``asr`` or ``subtitles`` from ``densevid extract``) become pseudo events, so a
corpus with no annotations at all trains the model to localise and describe. Two
objectives per video:

- generative: frames in (the speech stream empty), the time-tokenised transcript
  ``<t_s> <t_e> sentence ... </s>`` out;
- denoising: frames plus the transcript with T5 span corruption (``noise_density`` of
  its tokens in spans of mean length ``mean_span``, each span replaced by a sentinel
  ``<extra_id_k>``) in through the LM encoder's speech path; the masked spans, each
  after its sentinel, out.

``loss = generative + denoise_weight x denoising``, both logged; per-token
log-likelihood (and perplexity) of both targets on a held-out part of the corpus.
Checkpoints have ``densevid train``'s format, so ``densevid train --init DIR``
fine-tunes from them (``init_model``), and the run goes the same way under torchrun.
Corpora and their streaming are in ``densevid.shards``; span corruption and the
training items in ``densevid.pretrain_data``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from densevid.errors import DensevidError
from densevid.model import ModelConfig, coerce_numbers
from densevid.pretrain_data import (
    MEAN_SPAN,
    NOISE_DENSITY,
    Collator,
    PretrainTransform,
    collate_pretrain,
    ensure_sentinels,
)

logger = logging.getLogger(__name__)

LOG_NAME = "log.jsonl"
ASCII_ALPHABET = [chr(c) for c in range(33, 127)]  # printable, always in the BPE
# ModelConfig fields a fine-tuning run may set differently from its --init checkpoint
# (they change inputs, not parameter shapes); the rest comes from the checkpoint.
INIT_SWITCHABLE = (
    "visual_features",
    "speech_features",
    "max_speech_tokens",
    "max_target_tokens",
    "dropout",
    "interpolate_frames",
)


# --- config ------------------------------------------------------------------------


@dataclass
class PretrainConfig:
    """A pretraining run; configs/pretrain_*.yaml hold these fields.

    ``corpus`` is a FEATURES directory (``<visual>/`` and ``<speech>/`` streams, as
    ``densevid extract`` writes) or webdataset shards (a directory of ``.tar``, a
    glob, ``{000000..000009}`` braces, or a comma list); ``corpus_format`` forces one.
    The optimizer/schedule fields mean what they mean in ``densevid train``.
    """

    corpus: str = ""
    corpus_format: str = "auto"  # auto | features | webdataset
    speech: str = "subtitles"  # the transcript stream: asr or subtitles
    output_dir: str = "runs/pretrain"
    model: ModelConfig = field(default_factory=ModelConfig)
    tokenizer: str = ""  # "" trains a BPE tokenizer on corpus transcripts
    vocab_size: int = 2000
    tokenizer_samples: int = 5000  # transcript sentences that tokenizer learns from
    # more text for that tokenizer: ActivityNet .json (captions) or .txt files
    tokenizer_texts: list[str] = field(default_factory=list)
    denoise_weight: float = 1.0
    noise_density: float = NOISE_DENSITY
    mean_span: float = MEAN_SPAN
    max_steps: int = 1000
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 5e-4
    min_lr_ratio: float = 0.05
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    label_smoothing: float = 0.1
    # frame-event loss of a model with model.frame_events, on the generative
    # objective's pseudo events (the transcript's sentences)
    event_loss_weight: float = 1.0
    time_sigma: float = 0.0  # time-token targets spread over bins (TrainConfig's)
    amp: bool = True
    heldout_fraction: float = 0.05
    heldout_max_samples: int = 256
    eval_every: int = 500
    eval_batch_size: int = 16
    save_every: int = 250
    log_every: int = 25
    num_workers: int = 0
    shuffle_buffer: int = 256
    seed: int = 0
    device: str = "auto"
    num_threads: int = 0
    resume: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.model, Mapping):
            self.model = ModelConfig.from_dict(dict(self.model))
        coerce_numbers(self)
        if isinstance(self.tokenizer_texts, str):
            self.tokenizer_texts = (
                [self.tokenizer_texts] if self.tokenizer_texts else []
            )

    def verify(self) -> PretrainConfig:
        """Checks the whole config at once, naming the bad key."""
        if not self.corpus:
            raise DensevidError("pretrain config: 'corpus' is required")
        if self.corpus_format not in ("auto", "features", "webdataset"):
            raise DensevidError(
                "pretrain config: corpus_format must be auto, features or webdataset"
            )
        if not self.speech:
            raise DensevidError("pretrain config: 'speech' (asr/subtitles) is required")
        for name in ("max_steps", "batch_size", "grad_accum", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise DensevidError(f"pretrain config: {name} must be >= 1")
        for name in ("eval_every", "save_every", "log_every", "warmup_steps"):
            if getattr(self, name) < 0:
                raise DensevidError(f"pretrain config: {name} must be >= 0")
        if self.num_workers < 0 or self.heldout_max_samples < 0:
            raise DensevidError("pretrain config: num_workers, heldout_* must be >= 0")
        if not 0 < self.noise_density < 1 or self.mean_span < 1:
            raise DensevidError(
                "pretrain config: need 0 < noise_density < 1 and mean_span >= 1"
            )
        if self.denoise_weight < 0 or not 0 <= self.heldout_fraction < 1:
            raise DensevidError(
                "pretrain config: need denoise_weight >= 0, heldout_fraction in [0, 1)"
            )
        if self.lr <= 0 or not 0 <= self.label_smoothing < 1:
            raise DensevidError(
                "pretrain config: need lr > 0, label_smoothing in [0, 1)"
            )
        if self.time_sigma < 0:
            raise DensevidError(
                f"pretrain config: time_sigma must be >= 0: {self.time_sigma}"
            )
        if self.device not in ("auto", "cpu", "cuda"):
            raise DensevidError(
                f"pretrain config: device must be auto/cpu/cuda: {self.device}"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PretrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise DensevidError(f"pretrain config: unknown keys {sorted(unknown)}")
        return cls(**dict(d))


def load_pretrain_config(
    path: str | os.PathLike | None, overrides: Sequence[str] = ()
) -> PretrainConfig:
    """A YAML config plus ``key=value`` overrides (dotted for sections), read the
    way ``densevid train`` reads its configs."""
    from densevid.train import read_config_dict

    return PretrainConfig.from_dict(read_config_dict(path, overrides))


def open_corpus(cfg: PretrainConfig, model: ModelConfig) -> Any:
    """The corpus source the config names (features directory or shards)."""
    from densevid.shards import FeatureDirSource, ShardSource

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


# --- the run -----------------------------------------------------------------------


def _training_samples(source: Any, fraction: float) -> Iterator[dict[str, Any]]:
    """The corpus's raw samples in order, the held-out ones left out."""
    from densevid.shards import is_heldout

    for unit in source.units:
        for raw in source.read(unit):
            if not is_heldout(raw["__key__"], fraction):
                yield raw


def _train_tokenizer(cfg: PretrainConfig, source: Any, tok_dir: Path) -> None:
    """A BPE tokenizer from the transcripts of the first training samples, plus
    ``tokenizer_texts`` and every printable ASCII character (so text unlike the
    transcripts, e.g. capitalised captions, never maps to ``<unk>``)."""
    from densevid.text import train_tokenizer

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
    from densevid.events import load_annotations

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


def _first_video(source: Any, fraction: float) -> Any:
    for raw in _training_samples(source, fraction):
        return source.decode(raw)
    raise DensevidError("pretraining corpus has no training samples")


STATS_SAMPLES = 500  # training samples the input mean and std are taken from


def _set_input_stats(model: Any, source: Any, fraction: float) -> None:
    """``ModelConfig.standardize``: mean and std of the first training samples."""
    from densevid.data import feature_stats

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
    model: Any, items: Sequence[dict[str, Any]], batch_size: int, pad_id: int
) -> dict[str, float]:
    """Per-token log-likelihood and perplexity of both targets on held-out items."""
    from densevid.data import model_inputs, to_device
    from densevid.model import perplexity, token_log_likelihood

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
    from tqdm import tqdm

    from densevid.data import to_device
    from densevid.model import build_model, load_model, unwrap
    from densevid.shards import CorpusStream, heldout_samples
    from densevid.text import TimeTokenizer, load_tokenizer
    from densevid.train import (
        STATE_JSON,
        _barrier,
        _copy_checkpoint,
        _save_checkpoint,
        compute_loss,
        device_kind,
        gather_rng_states,
        init_distributed,
        load_training_state,
        lr_factor,
        make_optimizer,
        process_device,
    )

    cfg.verify()
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    kind = device_kind(cfg.device, "pretrain config")
    dist = init_distributed(kind)
    try:
        device = process_device(kind, dist)
        out = Path(cfg.output_dir)
        if dist.main:
            out.mkdir(parents=True, exist_ok=True)
        _barrier(dist)
        denoise = cfg.denoise_weight > 0
        model_cfg = ModelConfig.from_dict(asdict(cfg.model))
        # the denoising input goes through the LM encoder's speech path
        model_cfg.speech_features = cfg.speech if denoise else ""
        source = open_corpus(cfg, model_cfg)
        last = out / "last"
        resuming = cfg.resume and (last / STATE_JSON).is_file()
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        if resuming:
            model = load_model(last)
            model_cfg = model.config
            logger.info("resuming from %s", last)
        else:
            tok_dir = out / "tokenizer"
            if cfg.tokenizer:
                tokenizer = load_tokenizer(cfg.tokenizer, model_cfg.n_time_tokens)
            else:
                if dist.main and not (tok_dir / "tokenizer_config.json").is_file():
                    _train_tokenizer(cfg, source, tok_dir)
                _barrier(dist)
                tokenizer = load_tokenizer(tok_dir, model_cfg.n_time_tokens)
            ensure_sentinels(tokenizer)
            first = _first_video(source, cfg.heldout_fraction)
            model_cfg.visual_dim = int(first.visual.shape[1])
            if model_cfg.audio_features:
                if first.audio is None:
                    raise DensevidError(f"{first.key}: no audio features")
                model_cfg.audio_dim = int(first.audio.shape[1])
            model = build_model(model_cfg, tokenizer)
            if model_cfg.standardize:
                _set_input_stats(model, source, cfg.heldout_fraction)
        model.to(device).train()
        tt: TimeTokenizer = model.time_tokenizer
        sentinels = ensure_sentinels(model.tokenizer)
        if len(model.tokenizer) > model_cfg.vocab_size:
            raise DensevidError(
                f"tokenizer has {len(model.tokenizer)} tokens, the model "
                f"{model_cfg.vocab_size}: add sentinels before building the model"
            )
        transform = PretrainTransform(
            model_cfg,
            tt,
            sentinels,
            denoise=denoise,
            noise_density=cfg.noise_density,
            mean_span=cfg.mean_span,
        )
        optimizer = make_optimizer(model, cfg)  # type: ignore[arg-type]
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda s: lr_factor(s, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio),
        )
        step, best = 0, None
        if resuming:
            state = load_training_state(last, optimizer, scheduler, rank=dist.rank)
            step, best = int(state["step"]), state.get("best")
            if not state["rng_restored"]:  # saved by an older version: re-derive
                torch.manual_seed(cfg.seed + 7919 * dist.rank + step)
        elif dist.enabled:
            torch.manual_seed(cfg.seed + 7919 * dist.rank)
        if dist.main:
            (out / "config.json").write_text(
                json.dumps(cfg.to_dict(), indent=2), encoding="utf-8"
            )
        stream = CorpusStream(
            source,
            transform,
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
            _IterableAdapter(stream),
            batch_size=cfg.batch_size,
            collate_fn=Collator(tt.pad_id),
            num_workers=cfg.num_workers,
        )
        heldout: list[dict[str, Any]] = []
        if dist.main and cfg.eval_every >= 0 and cfg.heldout_fraction > 0:
            for raw in heldout_samples(
                source, cfg.heldout_fraction, cfg.heldout_max_samples
            ):
                key_rng = np.random.default_rng(zlib.crc32(raw["__key__"].encode()))
                item = stream.decode(raw, key_rng)
                if item is not None:
                    heldout.append(item)
            logger.info("%d held-out videos for evaluation", len(heldout))
        net: Any = model
        if dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            net = DistributedDataParallel(
                model, device_ids=[dist.local_rank] if device.type == "cuda" else None
            )
        use_amp = cfg.amp and device.type == "cuda"
        summary: dict[str, Any] = {"resumed_from": step if resuming else None}
        progress = tqdm(
            total=cfg.max_steps,
            initial=step,
            disable=not (verbose and dist.main),
            desc="pretrain",
        )

        def save(target: Path, ranks_rng: Any = None) -> None:
            _save_checkpoint(
                unwrap(net),
                optimizer,
                scheduler,
                step,
                {"best": best, "best_metric": "gen_log_likelihood"},
                target,
                ranks_rng=ranks_rng,
            )

        def evaluate_now() -> None:
            nonlocal best
            if not dist.main or not heldout:
                return
            scores = evaluate_heldout(
                unwrap(net), heldout, cfg.eval_batch_size, tt.pad_id
            )
            value = scores["gen_log_likelihood"]
            improved = best is None or value > best
            if improved:
                best = value
            with open(out / LOG_NAME, "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": step, "heldout": scores}) + "\n")
            logger.info(
                "step %d held-out %s",
                step,
                " ".join(f"{k}={v:.4g}" for k, v in scores.items()),
            )
            summary["heldout"] = scores
            if improved:
                save(out / "best")

        batches = iter(loader)
        t0, seen, running = time.perf_counter(), 0, []
        while step < cfg.max_steps:
            totals = {"loss": 0.0, "gen_loss": 0.0, "den_loss": 0.0}
            for m in range(cfg.grad_accum):
                parts = next(batches)
                last_micro = m == cfg.grad_accum - 1
                for name, batch in parts.items():
                    batch = to_device(batch, device)
                    weight = 1.0 if name == "generative" else cfg.denoise_weight
                    sync = last_micro and name == list(parts)[-1]
                    ctx = (
                        net.no_sync() if (dist.enabled and not sync) else nullcontext()
                    )
                    with ctx:
                        with torch.autocast(
                            device.type, dtype=torch.bfloat16, enabled=use_amp
                        ):
                            loss, _ = compute_loss(
                                net,
                                batch,
                                cfg.label_smoothing,
                                cfg.event_loss_weight,
                                cfg.time_sigma,
                            )
                        (loss * weight / cfg.grad_accum).backward()
                    value = loss.item() / cfg.grad_accum
                    totals["gen_loss" if name == "generative" else "den_loss"] += value
                    totals["loss"] += weight * value
                seen += len(parts["generative"]["video_ids"])
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            lr = scheduler.get_last_lr()[0]
            running.append(totals)
            summary.update(final_loss=totals["loss"], final=totals)
            progress.update(1)
            progress.set_postfix(
                gen=f"{totals['gen_loss']:.3f}", den=f"{totals['den_loss']:.3f}"
            )
            if on_step is not None:
                on_step(step, dict(totals, lr=lr))
            if dist.main and cfg.log_every and step % cfg.log_every == 0:
                rate = seen * dist.world / (time.perf_counter() - t0)
                mean = {k: sum(r[k] for r in running) / len(running) for k in totals}
                logger.info(
                    "step %d loss %.4f (generative %.4f, denoising %.4f) lr %.2e "
                    "%.1f videos/s",
                    step,
                    mean["loss"],
                    mean["gen_loss"],
                    mean["den_loss"],
                    lr,
                    rate,
                )
                with open(out / LOG_NAME, "a", encoding="utf-8") as f:
                    record = {"step": step, **mean, "lr": lr, "videos_per_s": rate}
                    f.write(json.dumps(record) + "\n")
                running = []
            if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.max_steps:
                evaluate_now()
                _barrier(dist)
            if cfg.save_every and step % cfg.save_every == 0:
                ranks_rng = gather_rng_states(dist)
                if dist.main:
                    save(last, ranks_rng)
        progress.close()
        evaluate_now()
        ranks_rng = gather_rng_states(dist)
        if dist.main:
            save(last, ranks_rng)
            if not (out / "best").exists():
                _copy_checkpoint(last, out / "best")
        _barrier(dist)
        summary.update(
            step=step,
            best=best,
            best_metric="gen_log_likelihood",
            output_dir=str(out),
            # counted in this process only: unknown when workers decode
            skipped_samples=stream.n_bad if cfg.num_workers == 0 else None,
        )
        return summary
    finally:
        if dist.enabled:
            import torch.distributed as tdist

            if tdist.is_initialized():
                tdist.destroy_process_group()


class _IterableAdapter(torch.utils.data.IterableDataset):
    """Presents a CorpusStream to the DataLoader as an IterableDataset."""

    def __init__(self, stream: Any) -> None:
        super().__init__()
        self.stream = stream

    def __iter__(self):
        return iter(self.stream)


# --- fine-tuning from a checkpoint ---------------------------------------------------


def init_model(
    checkpoint: str | os.PathLike,
    config: ModelConfig | None = None,
    *,
    tokenizer: str | os.PathLike = "",
) -> Any:
    """A trainable model initialised from a checkpoint (``densevid train --init``).

    The architecture, tokenizer and weights come from the checkpoint; from
    ``config`` only the input fields in ``INIT_SWITCHABLE`` are taken (e.g. frames
    only, or frames plus speech). Other differing fields are reported and ignored.

    Args:
        checkpoint: a directory ``densevid pretrain`` or ``densevid train`` wrote.
        config: the fine-tuning run's model section.
        tokenizer: the run's tokenizer, if it names one: it must equal the
            checkpoint's, since token ids index the embeddings.
    """
    from densevid.model import build_model, load_model
    from densevid.text import load_tokenizer

    src = load_model(checkpoint)
    new = ModelConfig.from_dict(src.config.to_dict())
    if config is not None:
        for name in INIT_SWITCHABLE:
            setattr(new, name, getattr(config, name))
        fixed = {"lm_config", "vocab_size", "visual_dim", "audio_dim", *INIT_SWITCHABLE}
        ignored = [
            f.name
            for f in fields(ModelConfig)
            if f.name not in fixed
            and getattr(config, f.name) != getattr(src.config, f.name)
            and not (f.name == "d_model" and config.lm)
        ]
        if config.audio_features != src.config.audio_features:
            raise DensevidError(
                f"{checkpoint}: the checkpoint's audio stream "
                f"({src.config.audio_features or 'none'}) cannot change when "
                f"fine-tuning from it (run asks for {config.audio_features or 'none'})"
            )
        if ignored:
            logger.warning(
                "init from %s: architecture taken from the checkpoint; ignoring %s",
                checkpoint,
                ", ".join(f"model.{n}" for n in ignored),
            )
    if tokenizer:
        given = load_tokenizer(tokenizer, new.n_time_tokens)
        if given.get_vocab() != src.tokenizer.get_vocab():
            raise DensevidError(
                f"tokenizer {tokenizer} differs from {checkpoint}'s: leave "
                "'tokenizer' empty to use the checkpoint's"
            )
    new.lm_config = dict(new.lm_config, dropout_rate=new.dropout)
    model = build_model(new, src.tokenizer)
    model.load_state_dict(src.state_dict())
    return model.train()

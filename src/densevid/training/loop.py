"""The one training loop, shared by every objective.

``run(cfg, objective)`` owns what every run does the same way: device and torchrun
(DistributedDataParallel; gloo on CPU, NCCL on GPU), seeding, resuming ``OUTPUT/last``
with its optimizer, schedule, RNG and weight average, gradient accumulation, bf16
autocast on CUDA, gradient clipping, the weight average, logging and progress,
evaluation with the best checkpoint kept, and periodic checkpoints. An ``Objective``
supplies only what differs: how a fresh model is built, its data (micro-batches as
weighted parts), and how it is evaluated. Fine-tuning (``densevid.training.finetune``)
and pretraining (``densevid.training.pretrain``) are two objectives; a new one (a
self-critical reward, a proposal head) is a third, not a copy of the loop.

Each optimizer step consumes ``grad_accum`` micro-batches per process; a part's loss
is a token mean scaled by its weight and divided by ``grad_accum``, and DDP averages
over processes, so 2 processes x 1 micro-batch give the same update as 1 process x 2
micro-batches (a CI test checks this).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from densevid.checkpoint import load_model, save_model
from densevid.device import resolve_device
from densevid.model import DenseVideoModel, unwrap
from densevid.text import load_tokenizer
from densevid.training.config import RunConfig
from densevid.training.distributed import (
    Dist,
    barrier,
    gather_rng_states,
    init_distributed,
    shutdown,
)
from densevid.training.losses import compute_loss
from densevid.training.state import (
    STATE_JSON,
    WeightAverage,
    load_training_state,
    save_checkpoint,
)

logger = logging.getLogger(__name__)

LOG_NAME = "log.jsonl"
# Metrics where lower is better; everything else (SODA_c, CIDEr, F1...) is higher.
LOWER_IS_BETTER = {"perplexity", "loss"}


@dataclass(frozen=True)
class RunContext:
    """Where a run is: its output directory, this process's place and device."""

    out: Path
    dist: Dist
    device: torch.device


@dataclass(frozen=True)
class Part:
    """One batch of a micro-step and the weight of its loss. ``name`` is the key its
    loss is reported under (``gen_loss``); "" when a step has a single part."""

    name: str
    batch: dict[str, Any]
    weight: float = 1.0


class Objective:
    """What one kind of run adds to the loop: model set-up, data, evaluation.

    Attributes:
        desc: the progress bar's label.
        loss_names: the parts' names, reported beside the total ``loss``.
        eval_key: the log's key for evaluation scores ("val", "heldout").
        best_metric: the evaluation score that picks ``OUTPUT/best``.
    """

    desc: str = "train"
    loss_names: tuple[str, ...] = ()
    eval_key: str = "val"
    best_metric: str = "loss"

    def build_model(self, ctx: RunContext) -> DenseVideoModel:
        """A new model (the run is not resuming), on the CPU."""
        raise NotImplementedError

    def load(self, path: Path) -> torch.nn.Module:
        """The model of a checkpoint this objective saved (resuming ``last``)."""
        return load_model(path)

    def save(self, model: torch.nn.Module, path: Path) -> None:
        """Writes the model's part of a checkpoint (``save`` reads it back)."""
        save_model(model, path)  # type: ignore[arg-type]

    def prepare(self, model: DenseVideoModel, ctx: RunContext, resuming: bool) -> None:
        """Checks the model against the data and readies what does not depend on the
        step (called with the model on its device, before the optimizer exists)."""

    def start(self, step: int) -> None:
        """Readies the data stream to continue after ``step`` optimizer steps
        (called once the training state is restored)."""

    def micro_batches(self, step: int) -> Iterator[list[Part]]:
        """The ``grad_accum`` micro-batches of optimizer step ``step`` on this
        process, each a list of parts, already on the run's device."""
        raise NotImplementedError

    def loss(
        self, net: torch.nn.Module, batch: dict[str, Any], cfg: Any
    ) -> tuple[torch.Tensor, int]:
        """A part's loss and token count: the token cross-entropy (plus the
        frame-event loss) unless the objective optimises something else."""
        return compute_loss(
            net,
            batch,
            cfg.label_smoothing,
            cfg.event_loss_weight,
            cfg.time_sigma,
            cfg.concept_loss_weight,
            cfg.proposal_loss_weight,
        )

    def evaluate(self, model: DenseVideoModel) -> dict[str, float] | None:
        """Scores on held-out data (main process only); None when there is none."""
        return None

    def summary(self) -> dict[str, Any]:
        """What the run's summary adds for this objective."""
        return {}


def prepare_tokenizer(
    cfg: RunConfig, ctx: RunContext, train: Callable[[Path], None]
) -> Any:
    """The run's tokenizer: the one ``cfg.tokenizer`` names, or else one that
    ``train(directory)`` trains into ``OUTPUT/tokenizer`` (rank 0 trains it once,
    the other ranks read it)."""
    if cfg.tokenizer:
        return load_tokenizer(cfg.tokenizer, cfg.model.n_time_tokens)
    tok_dir = ctx.out / "tokenizer"
    if ctx.dist.main and not (tok_dir / "tokenizer_config.json").is_file():
        train(tok_dir)
    barrier(ctx.dist)
    return load_tokenizer(tok_dir, cfg.model.n_time_tokens)


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up to 1 over ``warmup`` steps, then cosine decay to ``min_ratio``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    progress = min(max(progress, 0.0), 1.0)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module, cfg: RunConfig) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases, norms and position/embedding tables; a
    visual encoder over frames (its own two groups, after the others) at
    ``encoder_lr_ratio`` x lr."""
    decay, no_decay, enc_decay, enc_no_decay = [], [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        flat = p.ndim < 2 or "norm" in name or name.endswith(".pos")
        if name.startswith("frame_encoder."):
            (enc_no_decay if flat else enc_decay).append(p)
        else:
            (no_decay if flat else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if enc_decay or enc_no_decay:
        lr = cfg.lr * cfg.encoder_lr_ratio
        groups += [
            {"params": enc_decay, "weight_decay": cfg.weight_decay, "lr": lr},
            {"params": enc_no_decay, "weight_decay": 0.0, "lr": lr},
        ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-8)


def is_better(metric: str, value: float, best: float | None) -> bool:
    if best is None or (isinstance(best, float) and math.isnan(best)):
        return True
    return value < best if metric in LOWER_IS_BETTER else value > best


def append_log(out: Path, record: dict[str, Any]) -> None:
    with open(out / LOG_NAME, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def run(
    cfg: RunConfig,
    objective: Objective,
    *,
    verbose: bool = False,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Trains (or resumes) a run of ``objective``; returns a summary with the final
    loss and the best score.

    Args:
        cfg: the run's config, already verified.
        objective: its data, model set-up and evaluation.
        verbose: a tqdm progress bar on the main process.
        on_step: called on every process after each optimizer step with
            (step, {"loss", <each of objective.loss_names>, "lr"}).
    """
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    kind = resolve_device(cfg.device, cfg.KIND).type
    dist = init_distributed(kind)
    try:
        device = (
            torch.device("cuda", dist.local_rank)
            if kind == "cuda"
            else torch.device("cpu")
        )
        out = Path(cfg.output_dir)
        if dist.main:
            out.mkdir(parents=True, exist_ok=True)
        barrier(dist)
        ctx = RunContext(out, dist, device)
        return _run(cfg, objective, ctx, verbose, on_step)
    finally:
        shutdown(dist)


def _run(
    cfg: RunConfig,
    objective: Objective,
    ctx: RunContext,
    verbose: bool,
    on_step: Callable[[int, dict[str, float]], None] | None,
) -> dict[str, Any]:
    out, dist, device = ctx.out, ctx.dist, ctx.device
    last = out / "last"
    resuming = cfg.resume and (last / STATE_JSON).is_file()
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if resuming:
        model = objective.load(last)
        logger.info("resuming from %s", last)
    else:
        model = objective.build_model(ctx)
    model.to(device).train()
    encoder = getattr(model, "frame_encoder", None)
    if encoder is not None:  # memory of the end-to-end backward
        encoder.frames_in_backward = cfg.frames_in_backward
        encoder.checkpointing = cfg.gradient_checkpointing
        if cfg.encoder_lr_ratio == 0:  # a frozen encoder: the control arm
            encoder.requires_grad_(False)
    objective.prepare(model, ctx, resuming)
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: lr_factor(s, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio),
    )
    step, best = 0, None
    average = WeightAverage(model, cfg.ema) if cfg.ema > 0 else None
    if resuming:
        state = load_training_state(
            last, optimizer, scheduler, rank=dist.rank, average=average
        )
        step, best = int(state["step"]), state.get("best")
        if not state["rng_restored"]:  # saved by an older version: re-derive
            torch.manual_seed(cfg.seed + 7919 * dist.rank + step)
    elif dist.enabled:
        torch.manual_seed(cfg.seed + 7919 * dist.rank)
    if dist.main:
        (out / "config.json").write_text(
            json.dumps(cfg.to_dict(), indent=2), encoding="utf-8"
        )
    objective.start(step)
    net: torch.nn.Module = model
    if dist.enabled:
        net = DistributedDataParallel(
            model, device_ids=[dist.local_rank] if device.type == "cuda" else None
        )
    use_amp = cfg.amp and device.type == "cuda"
    summary: dict[str, Any] = {"resumed_from": step if resuming else None}
    progress = tqdm(
        total=cfg.max_steps,
        initial=step,
        disable=not (verbose and dist.main),
        desc=objective.desc,
    )

    def save(target: Path, ranks_rng: Any = None) -> None:
        save_checkpoint(
            unwrap(net),
            optimizer,
            scheduler,
            step,
            {"best": best, "best_metric": objective.best_metric},
            target,
            average.tensors() if average is not None else None,
            ranks_rng,
            write_model=objective.save,
        )

    def averaged() -> AbstractContextManager[None]:
        """The weights to evaluate and keep as best: the average when kept."""
        return average.applied(model) if average is not None else nullcontext()

    def evaluate_now() -> None:
        nonlocal best
        if not dist.main:
            return
        with averaged():
            scores = objective.evaluate(unwrap(net))
        if scores is None:
            return
        metric = objective.best_metric
        value = scores.get(metric)
        if value is None:
            logger.warning("best_metric %s not among %s", metric, sorted(scores))
        improved = value is not None and is_better(metric, value, best)
        if improved:
            best = float(value)
        append_log(out, {"step": step, objective.eval_key: scores, "best": best})
        logger.info(
            "step %d %s %s",
            step,
            objective.eval_key,
            " ".join(f"{k}={v:.4g}" for k, v in scores.items()),
        )
        summary[objective.eval_key] = scores
        if improved:
            with averaged():
                save(out / "best")

    t0, seen, running = time.perf_counter(), 0, []
    while step < cfg.max_steps:
        totals = {"loss": 0.0, **dict.fromkeys(objective.loss_names, 0.0)}
        for m, parts in enumerate(objective.micro_batches(step)):
            for j, part in enumerate(parts):
                sync = m == cfg.grad_accum - 1 and j == len(parts) - 1
                ctx_sync = (
                    net.no_sync()  # type: ignore[operator]
                    if (dist.enabled and not sync)
                    else nullcontext()
                )
                with ctx_sync:
                    with torch.autocast(
                        device.type, dtype=torch.bfloat16, enabled=use_amp
                    ):
                        loss, _ = objective.loss(net, part.batch, cfg)
                    (loss * part.weight / cfg.grad_accum).backward()
                value = loss.item() / cfg.grad_accum
                if part.name:
                    totals[part.name] += value
                totals["loss"] += part.weight * value
            seen += len(parts[0].batch["video_ids"])
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        if average is not None:
            average.update(model, step)
        lr = scheduler.get_last_lr()[0]
        running.append(totals)
        summary["final_loss"] = totals["loss"]
        if objective.loss_names:
            summary["final"] = totals
        progress.update(1)
        progress.set_postfix({k: f"{v:.3f}" for k, v in totals.items()})
        if on_step is not None:
            on_step(step, dict(totals, lr=lr))
        if dist.main and cfg.log_every and step % cfg.log_every == 0:
            rate = seen * dist.world / (time.perf_counter() - t0)
            mean = {k: sum(r[k] for r in running) / len(running) for k in totals}
            parts_text = ", ".join(f"{k} {mean[k]:.4f}" for k in objective.loss_names)
            logger.info(
                "step %d loss %.4f%s lr %.2e %.1f videos/s",
                step,
                mean["loss"],
                f" ({parts_text})" if parts_text else "",
                lr,
                rate,
            )
            append_log(out, {"step": step, **mean, "lr": lr, "videos_per_s": rate})
            running = []
        if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.max_steps:
            evaluate_now()
            barrier(dist)
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
            with averaged():
                save(out / "best")
    barrier(dist)
    summary.update(
        step=step,
        best=best,
        best_metric=objective.best_metric,
        output_dir=str(out),
        **objective.summary(),
    )
    return summary

"""Training the joint model: loop, validation, checkpoints, resume, torchrun/DDP.

One function, ``train(config)``, runs the same way in one process or under
``torchrun`` (DistributedDataParallel; gloo on CPU, NCCL on GPU). Each optimizer step
consumes ``batch_size x grad_accum x world_size`` videos from one seeded permutation of
the training set per epoch; micro-batch losses are token means divided by
``grad_accum``, and DDP averages over processes, so 2 processes x 1 micro-batch give
the same update as 1 process x 2 micro-batches (the CI test checks this).

Checkpoints are directories: config.json + model.safetensors + tokenizer files (what
``load_model`` reads) + ``training_state.safetensors`` (optimizer tensors, RNG states)
+ ``training_state.json`` (step, scheduler, best metric, optimizer hyper-parameters).
No pickles. ``OUTPUT/last`` is replaced atomically; ``OUTPUT/best`` holds the best
validation score so far by ``best_metric``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from densevid.errors import DensevidError
from densevid.model import IGNORE_INDEX, ModelConfig, coerce_numbers, unwrap

logger = logging.getLogger(__name__)

STATE_JSON = "training_state.json"
STATE_TENSORS = "training_state.safetensors"
LOG_NAME = "log.jsonl"
# Metrics where lower is better; everything else (SODA_c, CIDEr, F1...) is higher.
LOWER_IS_BETTER = {"perplexity", "loss"}


@dataclass
class TrainConfig:
    """A training run; configs/*.yaml hold these fields (``model:`` is a section).

    Paths: ``train_annotations`` / ``val_annotations`` (ActivityNet format; several
    validation files are several reference sets, the first gives inputs and
    likelihood), ``features`` (the FEATURES directory), ``output_dir``.
    """

    train_annotations: str = ""
    val_annotations: list[str] = field(default_factory=list)
    features: str = ""
    output_dir: str = "runs/run"
    model: ModelConfig = field(default_factory=ModelConfig)
    tokenizer: str = ""  # "" trains a BPE tokenizer on the training captions
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
    # time-token targets spread over neighbouring bins (Gaussian, sigma in bins):
    # a start one bin off costs less than one fifty bins off; 0 = one-hot
    time_sigma: float = 0.0
    # decay of an exponential moving average of the weights, which is what is
    # validated and saved as OUTPUT/best (OUTPUT/last keeps both); 0 = off
    ema: float = 0.0
    amp: bool = True  # bf16 autocast on CUDA; ignored on CPU
    crop: bool = False
    crop_min_fraction: float = 0.5
    # probability of a left-right mirrored training item (pixels features only),
    # with these words swapped both ways in its captions and transcript
    hflip: float = 0.0
    hflip_words: dict[str, str] = field(default_factory=lambda: {"left": "right"})
    # probability of a training item showing its video followed by another one
    # (when both fit in the longest training video): more distinct inputs per epoch
    concat: float = 0.0
    eval_every: int = 250
    save_every: int = 250
    log_every: int = 25
    best_metric: str = "SODA_c"
    val_metrics: list[str] = field(
        default_factory=lambda: ["SODA_c", "CIDEr", "METEOR", "Bleu_4", "F1"]
    )
    val_max_videos: int = 0  # 0: all
    val_method: str = "greedy"
    val_beam_size: int = 4
    val_batch_size: int = 16
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    num_threads: int = 0  # torch CPU threads; 0 leaves torch's default
    resume: bool = True  # continue OUTPUT/last when it exists
    # a checkpoint to fine-tune from (densevid pretrain/train output): architecture,
    # tokenizer and weights come from it (densevid.pretrain.init_model)
    init: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.model, Mapping):
            self.model = ModelConfig.from_dict(dict(self.model))
        coerce_numbers(self)
        if isinstance(self.val_annotations, str):
            self.val_annotations = (
                [self.val_annotations] if self.val_annotations else []
            )

    def verify(self) -> TrainConfig:
        """Checks the whole config at once, naming the bad key."""
        if not self.train_annotations:
            raise DensevidError("train config: 'train_annotations' is required")
        if not self.features:
            raise DensevidError("train config: 'features' (FEATURES dir) is required")
        for name in ("max_steps", "batch_size", "grad_accum", "val_batch_size"):
            if getattr(self, name) < 1:
                raise DensevidError(f"train config: {name} must be >= 1")
        for name in ("eval_every", "save_every", "log_every", "warmup_steps"):
            if getattr(self, name) < 0:
                raise DensevidError(f"train config: {name} must be >= 0")
        if self.lr <= 0 or not 0 <= self.label_smoothing < 1:
            raise DensevidError("train config: need lr > 0, label_smoothing in [0, 1)")
        if self.time_sigma < 0:
            raise DensevidError(
                f"train config: time_sigma must be >= 0: {self.time_sigma}"
            )
        if not 0 <= self.concat <= 1 or (self.concat and self.crop):
            raise DensevidError(
                f"train config: concat must be in [0, 1] and not combined with crop: "
                f"concat={self.concat}, crop={self.crop}"
            )
        if not 0 <= self.ema < 1:
            raise DensevidError(f"train config: ema must be in [0, 1): {self.ema}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise DensevidError(
                f"train config: device must be auto/cpu/cuda: {self.device}"
            )
        if self.val_method not in ("greedy", "beam"):
            raise DensevidError("train config: val_method must be greedy or beam")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise DensevidError(f"train config: unknown keys {sorted(unknown)}")
        return cls(**dict(d))


def load_config(
    path: str | os.PathLike | None, overrides: Sequence[str] = ()
) -> TrainConfig:
    """Reads a YAML (or JSON) config and applies ``key=value`` overrides."""
    return TrainConfig.from_dict(read_config_dict(path, overrides))


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
            raise DensevidError(f"{p}: not valid YAML ({e})") from e
        if not isinstance(data, dict):
            raise DensevidError(f"{p}: expected a mapping of config keys")
    for item in overrides:
        if "=" not in item:
            raise DensevidError(f"override {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        target = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise DensevidError(f"override {item!r}: {part} is not a section")
        target[parts[-1]] = value
    return data


# --- distributed ---------------------------------------------------------------------


@dataclass(frozen=True)
class Dist:
    """This process's place in the job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device_kind: str) -> Dist:
    """Joins the torchrun job when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device_kind == "cuda" else "gloo"
    if device_kind == "cuda":
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Dist(rank, world, local)


def _barrier(d: Dist) -> None:
    if d.enabled:
        import torch.distributed as dist

        dist.barrier()


# --- schedule and state --------------------------------------------------------------


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up to 1 over ``warmup`` steps, then cosine decay to ``min_ratio``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    progress = min(max(progress, 0.0), 1.0)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases, norms and position/embedding tables."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        flat = p.ndim < 2 or "norm" in name or name.endswith(".pos")
        (no_decay if flat else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-8)


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    np_state = np.random.get_state()
    tensors["rng.numpy.keys"] = torch.from_numpy(np_state[1].astype(np.int64))
    meta = {
        "numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": _py_state_to_json(random.getstate()),
    }
    return tensors, meta


def _set_rng_state(
    tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]
) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted(k for k in tensors if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    name, pos, has_gauss, gauss = meta["numpy"]
    keys = tensors["rng.numpy.keys"].numpy().astype(np.uint32)
    np.random.set_state((name, keys, pos, has_gauss, gauss))
    random.setstate(_py_state_from_json(meta["python"]))


def gather_rng_states(d: Dist) -> tuple[dict[str, torch.Tensor], list[Any]] | None:
    """Every rank's RNG state (a collective: all ranks call it), so that rank 0's
    checkpoint resumes each rank's dropout where it was; None without torchrun.

    Returns the other ranks' tensors keyed ``rank<r>.<name>`` and every rank's JSON
    part, rank 0's first.
    """
    if not d.enabled:
        return None
    import torch.distributed as dist

    states: list[Any] = [None] * d.world
    dist.all_gather_object(states, _rng_state())
    tensors = {
        f"rank{r}.{k}": v.cpu()
        for r, (ts, _) in enumerate(states)
        if r > 0
        for k, v in ts.items()
    }
    return tensors, [meta for _, meta in states]


def _py_state_to_json(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _py_state_from_json(state: list) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def save_training_state(
    out_dir: Path,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    step: int,
    extra: Mapping[str, Any],
    tensors_extra: Mapping[str, torch.Tensor] | None = None,
    ranks_rng: tuple[dict[str, torch.Tensor], list[Any]] | None = None,
) -> None:
    """Optimizer tensors + RNG (+ ``tensors_extra``, + the other ranks' RNG from
    ``gather_rng_states``) in safetensors; everything else in JSON."""
    from safetensors.torch import save_file

    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"optim.{idx}.{key}"] = t.detach().cpu().contiguous()
    rng_tensors, rng_meta = _rng_state()
    tensors.update(rng_tensors)
    for key, value in (tensors_extra or {}).items():
        tensors[key] = value.detach().cpu().contiguous()
    if ranks_rng is not None:
        tensors.update(ranks_rng[0])
    save_file(tensors, str(out_dir / STATE_TENSORS))
    sched = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    state = {
        "step": step,
        "optimizer_param_groups": sd["param_groups"],
        "scheduler": sched,
        "rng": rng_meta,
        **extra,
    }
    if ranks_rng is not None:
        state["rng_ranks"] = ranks_rng[1]
    (out_dir / STATE_JSON).write_text(json.dumps(state, indent=1), encoding="utf-8")


def load_training_state(
    ckpt: Path,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    *,
    rank: int = 0,
    average: WeightAverage | None = None,
) -> dict[str, Any]:
    """Restores optimizer, scheduler, RNG (``rank``'s own, when the checkpoint holds
    it) and the weight average; returns the JSON state (step, best...) with
    ``rng_restored`` saying whether this rank's RNG came back."""
    from safetensors.torch import load_file

    from densevid.events import read_json

    state = read_json(ckpt / STATE_JSON)
    tensors = load_file(str(ckpt / STATE_TENSORS))
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict(
        {"state": opt_state, "param_groups": state["optimizer_param_groups"]}
    )
    sched = scheduler.state_dict()
    sched.update(state["scheduler"])
    scheduler.load_state_dict(sched)
    state["rng_restored"] = False
    ranks = state.get("rng_ranks") or []
    if rank == 0:
        _set_rng_state(tensors, state["rng"])
        state["rng_restored"] = True
    elif rank < len(ranks):
        prefix = f"rank{rank}."
        own = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        _set_rng_state(own, ranks[rank])
        state["rng_restored"] = True
    if average is not None:
        average.load_tensors(tensors)
    return state


class WeightAverage:
    """An exponential moving average of a model's weights (buffers copied).

    Averaging the last few thousand steps' weights smooths out the noise of small
    batches; the decay ramps up as ``(1 + t) / (10 + t)`` so the first steps'
    random weights fade fast. Kept in float32 on the model's device.
    """

    PREFIX = "ema."

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {
            k: v.detach().clone().float() if v.is_floating_point() else v.clone()
            for k, v in model.state_dict().items()
        }

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                self.shadow[k].lerp_(v.float(), 1 - decay)
            else:
                self.shadow[k].copy_(v)

    @contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[None]:
        """The model holds the averaged weights inside the block."""
        raw = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield
        finally:
            model.load_state_dict(raw)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {self.PREFIX + k: v for k, v in self.shadow.items()}

    def load_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        found = {
            k[len(self.PREFIX) :]: v
            for k, v in tensors.items()
            if k.startswith(self.PREFIX)
        }
        if set(found) != set(self.shadow):
            raise DensevidError(
                "training state has no weight average for this model (trained "
                "without ema?); resume with the same ema setting or --no-resume"
            )
        for k, v in found.items():
            self.shadow[k].copy_(v)


def _save_checkpoint(
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    step: int,
    extra: Mapping[str, Any],
    target: Path,
    tensors_extra: Mapping[str, torch.Tensor] | None = None,
    ranks_rng: tuple[dict[str, torch.Tensor], list[Any]] | None = None,
) -> None:
    """Writes a complete checkpoint beside ``target`` and renames it into place."""
    from densevid.model import save_model

    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, tmp)
    save_training_state(
        tmp, optimizer, scheduler, step, extra, tensors_extra, ranks_rng
    )
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _copy_checkpoint(src: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


# --- batches -------------------------------------------------------------------------


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


# --- the run -------------------------------------------------------------------------


def device_kind(device: str, what: str = "train config") -> str:
    """'auto', 'cpu' or 'cuda' -> 'cuda' or 'cpu', checking that a GPU is there."""
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise DensevidError(f"{what}: device=cuda but no CUDA GPU is visible")
        return "cuda"
    return "cpu"


def process_device(kind: str, dist: Dist) -> torch.device:
    """This process's device: its local GPU under torchrun, or the CPU."""
    return (
        torch.device("cuda", dist.local_rank) if kind == "cuda" else torch.device("cpu")
    )


def _prepare_tokenizer(cfg: TrainConfig, train_videos, out: Path, dist: Dist):
    """The run's tokenizer: the checkpoint's on resume, else given or trained (rank 0
    trains and saves it; the others read it)."""
    from densevid.text import load_tokenizer, train_tokenizer

    tok_dir = out / "tokenizer"
    if cfg.tokenizer:
        return load_tokenizer(cfg.tokenizer, cfg.model.n_time_tokens)
    if dist.main and not (tok_dir / "tokenizer_config.json").is_file():
        captions = [e.text for v in train_videos.values() for e in v.events]
        train_tokenizer(
            captions,
            tok_dir,
            vocab_size=cfg.vocab_size,
            n_time_tokens=cfg.model.n_time_tokens,
        )
    _barrier(dist)
    return load_tokenizer(tok_dir, cfg.model.n_time_tokens)


def compute_loss(
    model: Any,
    batch: Mapping[str, Any],
    label_smoothing: float,
    event_loss_weight: float = 0.0,
    time_sigma: float = 0.0,
) -> tuple[torch.Tensor, int]:
    """Token-mean cross-entropy (with label smoothing; time tokens' targets spread
    over neighbouring bins with ``time_sigma``) and the token count, plus
    ``event_loss_weight`` x the frame-event loss when the batch has its targets."""
    from densevid.data import model_inputs

    labels = batch["labels"]
    targets = batch.get("frame_targets") if event_loss_weight > 0 else None
    out = model(labels, with_frames=targets is not None, **model_inputs(batch))
    logits, frames = out if targets is not None else (out, None)  # (B, T, V)
    if time_sigma > 0:
        config = unwrap(model).config
        loss = soft_time_cross_entropy(
            logits,
            labels,
            config.time_offset,
            config.n_time_tokens,
            time_sigma,
            label_smoothing,
        )
    else:
        loss = F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]),
            labels.reshape(-1),
            ignore_index=IGNORE_INDEX,
            label_smoothing=label_smoothing,
        )
    if frames is not None:
        mask = batch["visual_mask"].unsqueeze(-1).float()
        bce = F.binary_cross_entropy_with_logits(
            frames.float(), targets, reduction="none"
        )
        loss = loss + event_loss_weight * (bce * mask).sum() / (3 * mask.sum())
    return loss, int((labels != IGNORE_INDEX).sum())


def soft_time_cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    time_offset: int,
    n_time_tokens: int,
    sigma: float,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """``F.cross_entropy`` with label smoothing, except that a time token's target is
    a Gaussian over the time bins (``sigma`` bins wide) centred on its bin: the
    model learns that neighbouring bins are nearly right. -100 labels ignored."""
    logp = torch.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    valid = labels != IGNORE_INDEX
    ids = labels.clamp(min=0)
    nll = -logp.gather(-1, ids.unsqueeze(-1)).squeeze(-1)  # (B, T)
    is_time = valid & (ids >= time_offset) & (ids < time_offset + n_time_tokens)
    if is_time.any():
        bins = torch.arange(n_time_tokens, device=logits.device, dtype=torch.float32)
        centre = (ids[is_time] - time_offset).float()
        q = torch.exp(-0.5 * ((bins[None] - centre[:, None]) / sigma) ** 2)
        q = q / q.sum(-1, keepdim=True)
        time_logp = logp[is_time][:, time_offset : time_offset + n_time_tokens]
        nll = nll.masked_scatter(is_time, -(q * time_logp).sum(-1))
    smooth = -logp.mean(-1)
    loss = (1 - label_smoothing) * nll + label_smoothing * smooth
    return (loss * valid).sum() / valid.sum().clamp(min=1)


def require_java_for_validation(cfg: TrainConfig) -> None:
    """Fails before the first step, not at the first evaluation minutes later, when
    the validation metrics run Java (METEOR, SODA_c, the caption metrics) and there
    is none; F1 and the likelihood need none."""
    if not cfg.val_annotations:
        return
    try:
        from densevid.metrics import java_executable
        from densevid.metrics.evaluate import needs_java
    except ImportError:
        return  # validate() falls back to the likelihood
    if needs_java(cfg.val_metrics):
        try:
            java_executable()
        except DensevidError as e:
            raise DensevidError(
                f"{e}; or validate without Java: --set val_metrics=[F1] "
                "--set best_metric=F1"
            ) from None


def validate(
    model: Any,
    dataset: Any,
    references: list[dict[str, Any]],
    cfg: TrainConfig,
) -> dict[str, float]:
    """Decodes the validation videos, scores them with ``densevid.metrics.evaluate``
    and adds the references' per-token log-likelihood and perplexity."""
    from densevid.decoding import DecodingOptions, decode_dataset

    options = DecodingOptions(
        method=cfg.val_method,
        beam_size=cfg.val_beam_size,
        max_length=cfg.model.max_target_tokens,
    )
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


def _is_better(metric: str, value: float, best: float | None) -> bool:
    if best is None or (isinstance(best, float) and math.isnan(best)):
        return True
    return value < best if metric in LOWER_IS_BETTER else value > best


def train(
    cfg: TrainConfig,
    *,
    verbose: bool = False,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Trains (or resumes) a run; returns a summary with the final and best scores.

    Args:
        cfg: the run (see TrainConfig); ``output_dir`` receives ``last/``, ``best/``,
            ``tokenizer/``, ``config.json`` (the run's config) and ``log.jsonl``.
        verbose: a tqdm progress bar on the main process.
        on_step: called on every process after each optimizer step with
            (step, {"loss", "lr"}) — for tests and tooling.
    """
    from tqdm import tqdm

    from densevid.data import VideoDataset, collate, to_device
    from densevid.events import load_annotations
    from densevid.model import build_model, load_model
    from densevid.text import TimeTokenizer

    cfg.verify()
    require_java_for_validation(cfg)
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    kind = device_kind(cfg.device)
    dist = init_distributed(kind)
    try:
        device = process_device(kind, dist)
        out = Path(cfg.output_dir)
        if dist.main:
            out.mkdir(parents=True, exist_ok=True)
        _barrier(dist)
        train_videos = load_annotations(cfg.train_annotations)
        val_refs = [load_annotations(p) for p in cfg.val_annotations]
        last = out / "last"
        resuming = cfg.resume and (last / STATE_JSON).is_file()
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        if resuming:
            model = load_model(last)
            model_cfg = model.config
            logger.info("resuming from %s", last)
        elif cfg.init:
            from densevid.pretrain import init_model

            model = init_model(cfg.init, cfg.model, tokenizer=cfg.tokenizer)
            model_cfg = model.config
            logger.info("fine-tuning from %s", cfg.init)
        else:
            tokenizer = _prepare_tokenizer(cfg, train_videos, out, dist)
            model_cfg = ModelConfig.from_dict(asdict(cfg.model))
            probe = VideoDataset(
                train_videos,
                cfg.features,
                model_cfg,
                TimeTokenizer(tokenizer, model_cfg.n_time_tokens),
                cache=False,
            )
            model_cfg.visual_dim = probe.feature_dim(model_cfg.visual_features)
            if model_cfg.audio_features:
                model_cfg.audio_dim = probe.feature_dim(model_cfg.audio_features)
            model = build_model(model_cfg, tokenizer)
            if model_cfg.standardize:
                model.visual.set_input_stats(
                    *probe.input_stats(model_cfg.visual_features)
                )
                if model.audio is not None:
                    model.audio.set_input_stats(
                        *probe.input_stats(model_cfg.audio_features)
                    )
        model.to(device).train()
        tt = model.time_tokenizer
        probe = VideoDataset(train_videos, cfg.features, model_cfg, tt, cache=False)
        streams = [(model_cfg.visual_features, model_cfg.visual_dim)]
        if model_cfg.use_audio:
            streams.append((model_cfg.audio_features, model_cfg.audio_dim))
        for name, dim in streams:
            if probe.feature_dim(name) != dim:
                raise DensevidError(
                    f"{cfg.features}/{name}: features are {probe.feature_dim(name)}-d "
                    f"but the model reads {dim}-d (extracted with other options?)"
                )
        if not resuming:  # what `densevid caption` needs to treat a new video alike
            model_cfg.extractor_options = probe.extractor_options()
            model_cfg.max_duration = max(
                float(v.duration) for v in train_videos.values()
            )
        train_set = VideoDataset(
            train_videos,
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
        val_set = None
        if val_refs and dist.main:
            first = val_refs[0]
            if cfg.val_max_videos:
                first = dict(list(first.items())[: cfg.val_max_videos])
            val_set = VideoDataset(first, cfg.features, model_cfg, tt)
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
        net: Any = model
        if dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            net = DistributedDataParallel(
                model, device_ids=[dist.local_rank] if device.type == "cuda" else None
            )
        use_amp = cfg.amp and device.type == "cuda"
        amp_dtype = torch.bfloat16
        pad_id = tt.pad_id
        summary: dict[str, Any] = {"resumed_from": step if resuming else None}
        progress = tqdm(
            total=cfg.max_steps,
            initial=step,
            disable=not (verbose and dist.main),
            desc="train",
        )
        t0, seen, running = time.perf_counter(), 0, []

        def save(target: Path, ranks_rng: Any = None) -> None:
            _save_checkpoint(
                unwrap(net),
                optimizer,
                scheduler,
                step,
                {"best": best, "best_metric": cfg.best_metric},
                target,
                average.tensors() if average is not None else None,
                ranks_rng,
            )

        def averaged() -> Any:
            """The weights to validate and keep as best: the average when kept."""
            return average.applied(model) if average is not None else nullcontext()

        def evaluate_now() -> None:
            nonlocal best
            if not dist.main or val_set is None:
                return
            with averaged():
                scores = validate(unwrap(net), val_set, val_refs, cfg)
            value = scores.get(cfg.best_metric)
            if value is None:
                logger.warning(
                    "best_metric %s not among %s", cfg.best_metric, sorted(scores)
                )
            improved = value is not None and _is_better(cfg.best_metric, value, best)
            if improved:
                best = float(value)
            record = {"step": step, "val": scores, "best": best}
            with open(out / LOG_NAME, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            logger.info(
                "step %d val %s",
                step,
                " ".join(f"{k}={v:.4g}" for k, v in scores.items()),
            )
            summary["val"] = scores
            if improved:
                with averaged():
                    save(out / "best")

        while step < cfg.max_steps:
            train_set.set_epoch(epoch_of(len(train_set), step, cfg, dist))
            micro = step_indices(len(train_set), step, cfg, dist)
            step_loss = 0.0
            for m, indices in enumerate(micro):
                batch = to_device(
                    collate([train_set[i] for i in indices], pad_id), device
                )
                sync = m == len(micro) - 1
                ctx = net.no_sync() if (dist.enabled and not sync) else nullcontext()
                with ctx:
                    with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                        loss, _ = compute_loss(
                            net,
                            batch,
                            cfg.label_smoothing,
                            cfg.event_loss_weight,
                            cfg.time_sigma,
                        )
                    (loss / cfg.grad_accum).backward()
                step_loss += loss.item() / cfg.grad_accum
                seen += len(indices)
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if average is not None:
                average.update(model, step)
            running.append(step_loss)
            summary["final_loss"] = step_loss
            lr = scheduler.get_last_lr()[0]
            progress.update(1)
            progress.set_postfix(loss=f"{step_loss:.3f}")
            if on_step is not None:
                on_step(step, {"loss": step_loss, "lr": lr})
            if dist.main and cfg.log_every and step % cfg.log_every == 0:
                rate = seen * dist.world / (time.perf_counter() - t0)
                mean = sum(running) / len(running)
                logger.info(
                    "step %d loss %.4f lr %.2e %.1f videos/s", step, mean, lr, rate
                )
                with open(out / LOG_NAME, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"step": step, "loss": mean, "lr": lr}) + "\n")
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
                with averaged():
                    save(out / "best")
        _barrier(dist)
        summary.update(
            step=step, best=best, best_metric=cfg.best_metric, output_dir=str(out)
        )
        return summary
    finally:
        # ranks that finished passed the barrier above; without destroying the group
        # gloo processes can abort at exit (DESIGN.md)
        if dist.enabled:
            import torch.distributed as tdist

            if tdist.is_initialized():
                tdist.destroy_process_group()

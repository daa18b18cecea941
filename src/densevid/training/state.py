"""What a checkpoint holds beyond the model: optimizer, schedule, RNG, weight average.

Optimizer tensors, RNG states and the weight average go to
``training_state.safetensors``; step, scheduler, best score and the optimizer's
hyper-parameters to ``training_state.json``. No pickles. A checkpoint directory is
written beside its target and renamed into place, so a run killed at any moment
leaves the previous one whole.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from densevid.checkpoint import save_model
from densevid.errors import DensevidError
from densevid.events import read_json
from densevid.model import DenseVideoModel

STATE_JSON = "training_state.json"
STATE_TENSORS = "training_state.safetensors"


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
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
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"optim.{idx}.{key}"] = t.detach().cpu().contiguous()
    rng_tensors, rng_meta = rng_state()
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


def save_checkpoint(
    model: DenseVideoModel,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    step: int,
    extra: Mapping[str, Any],
    target: Path,
    tensors_extra: Mapping[str, torch.Tensor] | None = None,
    ranks_rng: tuple[dict[str, torch.Tensor], list[Any]] | None = None,
    *,
    write_model: Callable[[Any, Path], None] = save_model,
) -> None:
    """Writes a complete checkpoint beside ``target`` and renames it into place;
    ``write_model`` writes the model's files (another objective's model has its
    own)."""
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write_model(model, tmp)
    save_training_state(
        tmp, optimizer, scheduler, step, extra, tensors_extra, ranks_rng
    )
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def copy_checkpoint(src: Path, target: Path) -> None:
    """Copies a checkpoint directory and renames the copy into place."""
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)

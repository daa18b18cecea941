"""``train``: a fine-tuning run of the objective its config names (maximum
likelihood, ``densevid.training.finetune``, or self-critical,
``densevid.training.scst``) on the shared loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from densevid.training.config import TrainConfig
from densevid.training.finetune import Finetune
from densevid.training.loop import run
from densevid.training.scst import SelfCritical


def train(
    cfg: TrainConfig,
    *,
    verbose: bool = False,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Trains (or resumes) a fine-tuning run; returns a summary with the final and
    best scores.

    Args:
        cfg: the run (see TrainConfig); ``output_dir`` receives ``last/``, ``best/``,
            ``tokenizer/``, ``config.json`` (the run's config) and ``log.jsonl``.
        verbose: a tqdm progress bar on the main process.
        on_step: called on every process after each optimizer step with
            (step, {"loss", "lr"}) — for tests and tooling.
    """
    cfg.verify()
    objective = SelfCritical(cfg) if cfg.objective == "scst" else Finetune(cfg)
    return run(cfg, objective, verbose=verbose, on_step=on_step)

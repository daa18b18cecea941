"""Training: one loop (``loop.run``) for every objective.

The outer layer of densevid: only the CLI and ``bench/`` import it; the library
(model, decoding, data, features) never does. ``train`` fine-tunes on annotated
videos, ``pretrain`` learns from narrated ones; both are ``Objective`` s of the same
loop and write checkpoints that ``densevid.load_model`` reads.
"""

from densevid.training.config import (
    PretrainConfig,
    RunConfig,
    TrainConfig,
    load_config,
    load_pretrain_config,
)
from densevid.training.pretrain import pretrain
from densevid.training.train import train

__all__ = [
    "PretrainConfig",
    "RunConfig",
    "TrainConfig",
    "load_config",
    "load_pretrain_config",
    "pretrain",
    "train",
]

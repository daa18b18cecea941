"""Checkpoints: find, load and save a model; start a trainable one from another.

A checkpoint is a directory: ``config.json`` (the ``ModelConfig``),
``model.safetensors`` and the tokenizer's files. Never a pickle. ``load_model`` takes a
bundled model's name (``"default"``), a directory, or a hub repo id holding one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

import torch
from safetensors.torch import load_model as load_safetensors
from safetensors.torch import save_model as save_safetensors

from densevid.config import ModelConfig
from densevid.device import resolve_device
from densevid.ensemble import Ensemble
from densevid.errors import DensevidError
from densevid.model import DenseVideoModel, build_lm, build_model, unwrap
from densevid.text import load_tokenizer

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
BUNDLED_DIR = Path(__file__).parent / "models"  # models shipped in the package
CHECKPOINT_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt"]
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
# ... and, when the run reads frames (a visual encoder trained end to end, warm
# started from a frozen-feature checkpoint), the fields of its encoder and input;
# weights whose shapes then differ (the temporal encoder's input layer) start fresh
FRAMES_SWITCHABLE = (
    "visual_encoder",
    "encoder_width",
    "encoder_dim",
    "frame_shape",
    "visual_blocks",
    "standardize",
)
# ... and the heads a fine-tuning run may add to (or leave off) a pretrained model:
# their vocabulary and anchors come from the run's training captions and events,
# their weights start fresh
HEAD_SWITCHABLE = (
    "n_concepts",
    "concepts",
    "caption_idf",
    "n_proposal_anchors",
    "proposal_anchors",
)


def save_model(model: DenseVideoModel, out_dir: str | os.PathLike) -> None:
    """Writes config.json, model.safetensors and the tokenizer files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = unwrap(model)
    model.config.save(out / CONFIG_NAME)
    save_safetensors(model, str(out / WEIGHTS_NAME))
    if model.tokenizer is not None:
        model.tokenizer.save_pretrained(str(out))


def available_models() -> list[str]:
    """Names of the models that ship inside the package (``load_model(name)``)."""
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / WEIGHTS_NAME).is_file())


def resolve_checkpoint(name_or_dir: str | os.PathLike) -> Path:
    """A bundled model's name, a checkpoint directory, or a Hugging Face Hub repo id
    (``owner/name``, downloaded once into the hub cache) -> a local directory."""
    text = str(name_or_dir)
    if text in available_models():
        return BUNDLED_DIR / text
    path = Path(name_or_dir)
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") != 1:
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(text, allow_patterns=CHECKPOINT_PATTERNS))
    except Exception as e:  # offline, unknown repo, no permission: one line
        raise DensevidError(
            f"{text}: no such checkpoint directory, bundled model "
            f"({', '.join(available_models()) or 'none'}) or reachable hub repo "
            f"({type(e).__name__})"
        ) from e


def load_model(
    name_or_dir: str | os.PathLike, *, device: str | torch.device | None = None
) -> DenseVideoModel:
    """Loads a model: ``"default"`` (the bundled one), a checkpoint directory
    (config.json + model.safetensors + tokenizer, as ``densevid train`` writes) or a
    hub repo id holding one.

    ``device="auto"`` picks CUDA when a GPU is visible.

    Returns the model in eval mode with its tokenizer attached (``model.tokenizer``).
    """
    path = resolve_checkpoint(name_or_dir)
    if not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
        raise DensevidError(
            f"{name_or_dir}: not a checkpoint directory (needs {CONFIG_NAME} and "
            f"{WEIGHTS_NAME}, as 'densevid train' writes)"
        )
    config = ModelConfig.load(path / CONFIG_NAME)
    tokenizer = load_tokenizer(path, config.n_time_tokens)
    model = DenseVideoModel(config, build_lm(config, config.vocab_size))
    try:
        load_safetensors(model, str(path / WEIGHTS_NAME))
    except (RuntimeError, OSError) as e:
        raise DensevidError(f"{path / WEIGHTS_NAME}: weights do not fit ({e})") from e
    model.tokenizer = tokenizer
    if device is not None:
        model.to(resolve_device(device))
    return model.eval()


def load_models(
    names: Sequence[str | os.PathLike], *, device: str | torch.device | None = None
) -> DenseVideoModel | Ensemble:
    """One checkpoint loads as a model (``load_model``), several as an Ensemble."""
    if not names:
        raise DensevidError("no checkpoint given")
    models = [load_model(n, device=device) for n in names]
    if len(models) == 1:
        return models[0]
    return Ensemble(models, [str(n) for n in names]).eval()


def init_model(
    checkpoint: str | os.PathLike,
    config: ModelConfig | None = None,
    *,
    tokenizer: str | os.PathLike = "",
) -> DenseVideoModel:
    """A trainable model initialised from a checkpoint (``densevid train --init``).

    The architecture, tokenizer and weights come from the checkpoint; from
    ``config`` only the input fields in ``INIT_SWITCHABLE`` (e.g. frames only, or
    frames plus speech) and the heads in ``HEAD_SWITCHABLE`` (a concept or proposal
    head, new weights) are taken. Other differing fields are reported and ignored.

    Args:
        checkpoint: a directory ``densevid pretrain`` or ``densevid train`` wrote.
        config: the fine-tuning run's model section.
        tokenizer: the run's tokenizer, if it names one: it must equal the
            checkpoint's, since token ids index the embeddings.
    """
    src = load_model(checkpoint)
    new = ModelConfig.from_dict(src.config.to_dict())
    frames = config is not None and config.reads_frames
    if config is not None:
        switchable = INIT_SWITCHABLE + HEAD_SWITCHABLE
        switchable += FRAMES_SWITCHABLE if frames else ()
        for name in switchable:
            setattr(new, name, getattr(config, name))
        if frames and new.visual_encoder != src.config.visual_encoder:
            new.encoder_config = {}  # a new encoder: built from its hub name
        fixed = {"lm_config", "vocab_size", "visual_dim", "audio_dim", *switchable}
        fixed |= {"encoder_config", "domain_stats"} if frames else set()
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
    heads = any(getattr(new, n) != getattr(src.config, n) for n in HEAD_SWITCHABLE)
    if frames or heads:
        fresh = load_matching(model, src.state_dict())
        if fresh:
            logger.warning(
                "init from %s: %d tensors start fresh (not in the checkpoint or "
                "of another shape): %s",
                checkpoint,
                len(fresh),
                ", ".join(fresh[:8]) + (" ..." if len(fresh) > 8 else ""),
            )
    else:
        model.load_state_dict(src.state_dict())
    return model.train()


def load_matching(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Loads the tensors of ``state`` whose name and shape the model has; returns
    the names of the model's tensors left as they were."""
    own = model.state_dict()
    take = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(take, strict=False)
    return sorted(set(own) - set(take))

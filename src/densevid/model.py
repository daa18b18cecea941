"""The joint model: a temporal encoder over frame features feeding a T5-family LM.

Vid2Seq-style (DESIGN.md, "The joint model"): F frame features -> linear projection ->
temporal transformer with learned positions. Optional streams: audio features through
their own projection (and positions), and the speech transcript as time-tokenised text
encoded by the LM's own encoder. The encoded streams are concatenated along time and
the LM decoder cross-attends to all of them, writing ``<t_s> <t_e> caption ... </s>``.

The LM is wrapped by composition (``self.lm`` is a ``T5ForConditionalGeneration``); its
encoder is used only for the speech stream.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from densevid.errors import DensevidError

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
IGNORE_INDEX = -100  # label value that takes no part in the loss (transformers' own)
BUNDLED_DIR = Path(__file__).parent / "models"  # models shipped in the package
CHECKPOINT_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt"]


def coerce_numbers(obj: Any) -> None:
    """Casts a config dataclass's numeric fields to their defaults' types.

    YAML 1.1 reads ``3e-4`` as a string and ``1`` as an int; a value that is not a
    number where one is due is an error naming the key.
    """
    for f in fields(obj):
        if f.default is MISSING or f.default is None:
            continue
        value, default = getattr(obj, f.name), f.default
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise DensevidError(
                    f"config: {f.name} must be true or false: {value!r}"
                )
            continue
        if not isinstance(default, int | float) or type(value) is type(default):
            continue
        try:
            cast = type(default)(value)
        except (TypeError, ValueError):
            raise DensevidError(
                f"config: {f.name} must be a number: {value!r}"
            ) from None
        if isinstance(value, bool) or (
            isinstance(default, int) and cast != float(value)
        ):
            raise DensevidError(f"config: {f.name} must be an integer: {value!r}")
        object.__setattr__(obj, f.name, cast)


@dataclass
class ModelConfig:
    """Architecture and input contract; saved as config.json beside the weights.

    Attributes:
        lm: hub name or path of a T5-family model to start from; "" builds a T5 from
            the ``d_model``... fields below with random weights.
        lm_config: the LM's full transformers config (filled in when the model is
            built, so a checkpoint loads without the hub).
        vocab_size: tokenizer size including time tokens (filled in when built).
        n_time_tokens: N, the number of relative time bins.
        n_frames: F, frames sampled uniformly over each video.
        interpolate_frames: each frame blends the two feature rows around its time
            (``densevid.data.sample_frames``) instead of being the nearest row, so
            frame j shows the video at the time the time tokens say it stands for.
            Checkpoints saved before the option existed read the nearest rows.
        visual_dim: dimension of the visual features (of the blocks used).
        visual_blocks: blocks of the visual features to use, by the names of their
            sidecar's layout (pixels: rgb, edges, motion, blobs); empty: all.
        visual_features / audio_features / speech_features: extractor names the
            features are read from (``FEATURES/<extractor>/<video_id>.npy``); empty
            strings turn the audio / speech streams off.
        audio_dim: dimension of the audio features (0: no audio stream).
        n_audio_frames: audio steps sampled per video.
        max_speech_tokens / max_target_tokens: sequence caps (tokens).
        extractor_options: extractor name -> the options its training features were
            made with (from their sidecars), so captioning a new video extracts the
            same features.
        max_duration: the longest training video (s); longer videos are captioned in
            windows of this length.
        n_temporal_layers, n_temporal_heads: the temporal transformer.
        temporal_conv: kernel size (frames, odd) of a residual block of two 1-D
            convolutions before the temporal transformer; 0: none. A transformer with
            learned absolute positions finds "this frame differs from its
            neighbours" (where events start and end) only slowly; a convolution sees
            it from the first step.
        input_norm: LayerNorm over each input feature vector before its projection.
        time_pointer: time tokens also score by pointing at frames
            (``TimePointerHead``).
        time_offset: id of ``<time_0>`` (filled in when built; time ids are contiguous).
        standardize: each input feature dimension is first standardised with the
            training features' mean and std (stored in the checkpoint): fields of
            very different scales (pixels' blob mass ~0.01 beside positions ~0.5)
            then start on an equal footing.
        frame_events: a head on the visual states that says, per frame, whether an
            event is under way, starts or ends there (``frame_head``); trained
            beside the captions with ``TrainConfig.event_loss_weight``.
    """

    lm: str = ""
    lm_config: dict[str, Any] = field(default_factory=dict)
    vocab_size: int = 0
    d_model: int = 256
    d_ff: int = 1024
    d_kv: int = 32
    n_heads: int = 8
    n_layers: int = 4
    n_decoder_layers: int = 4
    dropout: float = 0.1
    n_time_tokens: int = 100
    n_frames: int = 100
    interpolate_frames: bool = True
    visual_dim: int = 0
    visual_features: str = "pixels"
    visual_blocks: list[str] = field(default_factory=list)
    n_temporal_layers: int = 2
    n_temporal_heads: int = 8
    temporal_conv: int = 0
    input_norm: bool = True
    audio_dim: int = 0
    audio_features: str = ""
    n_audio_frames: int = 100
    speech_features: str = ""
    max_speech_tokens: int = 256
    max_target_tokens: int = 256
    extractor_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_duration: float = 0.0
    time_pointer: bool = False
    time_offset: int = 0
    frame_events: bool = False
    standardize: bool = False

    def __post_init__(self) -> None:
        coerce_numbers(self)
        for name in ("n_time_tokens", "n_frames", "d_model", "n_temporal_heads"):
            if getattr(self, name) < 1:
                raise DensevidError(f"model config: {name} must be >= 1")
        if self.n_time_tokens < 2:
            raise DensevidError("model config: n_time_tokens must be >= 2")
        if not 0.0 <= self.dropout < 1.0:
            raise DensevidError(
                f"model config: dropout must be in [0, 1): {self.dropout}"
            )
        if self.temporal_conv < 0 or (
            self.temporal_conv and self.temporal_conv % 2 == 0
        ):
            raise DensevidError(
                "model config: temporal_conv must be 0 (none) or an odd kernel size: "
                f"{self.temporal_conv}"
            )

    @property
    def use_audio(self) -> bool:
        return bool(self.audio_features) and self.audio_dim > 0

    @property
    def use_speech(self) -> bool:
        return bool(self.speech_features)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise DensevidError(f"model config: unknown keys {sorted(unknown)}")
        return cls(**d)

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> ModelConfig:
        from densevid.events import read_json

        d = read_json(path)
        if isinstance(d, dict):  # saved before frames were interpolated
            d.setdefault("interpolate_frames", False)
        return cls.from_dict(d)


class TemporalEncoder(nn.Module):
    """Projects one feature stream and contextualises it over time.

    ``[B, T, D_in] -> [B, T, d_model]`` with learned positions; padded steps are masked.
    """

    def __init__(
        self,
        d_in: int,
        d_model: int,
        n_steps: int,
        n_layers: int,
        n_heads: int,
        dropout: float,
        input_norm: bool = True,
        standardize: bool = False,
        conv_kernel: int = 0,
    ) -> None:
        super().__init__()
        self.standardize = standardize
        if standardize:  # set from the training features by set_input_stats
            self.register_buffer("in_mean", torch.zeros(d_in))
            self.register_buffer("in_std", torch.ones(d_in))
        # features mix blocks of different scales (pixels: colours, edges, motion;
        # CLIP: large norms): normalising each frame first makes one lr fit all
        self.in_norm = nn.LayerNorm(d_in) if input_norm else nn.Identity()
        self.proj = nn.Linear(d_in, d_model)
        self.conv: nn.Module | None = None
        if conv_kernel:
            pad = conv_kernel // 2
            self.conv = nn.Sequential(
                nn.Conv1d(d_model, d_model, conv_kernel, padding=pad),
                nn.GELU(),
                nn.Conv1d(d_model, d_model, conv_kernel, padding=pad),
            )
        self.pos = nn.Parameter(torch.zeros(n_steps, d_model))
        nn.init.normal_(self.pos, std=0.02)
        self.drop = nn.Dropout(dropout)
        if n_layers > 0:
            layer = nn.TransformerEncoderLayer(
                d_model,
                n_heads,
                4 * d_model,
                dropout,
                batch_first=True,
                norm_first=True,
                activation="gelu",
            )
            self.layers: nn.Module | None = nn.TransformerEncoder(
                layer, n_layers, enable_nested_tensor=False
            )
        else:
            self.layers = None
        self.norm = nn.LayerNorm(d_model)

    @torch.no_grad()
    def set_input_stats(self, mean: Any, std: Any) -> None:
        """The per-dimension mean and std of the training features (standardize)."""
        if not self.standardize:
            raise DensevidError("this encoder does not standardise its inputs")
        self.in_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.in_std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: [B, T, D_in]; mask: [B, T] bool, True where a real step."""
        if self.standardize:
            x = (x - self.in_mean) / self.in_std
        h = self.proj(self.in_norm(x))  # (B, T, d)
        if self.conv is not None:  # padded steps read as zeros by their neighbours
            h = h * mask.unsqueeze(-1)
            h = h + self.conv(h.transpose(1, 2)).transpose(1, 2)
        h = h + self.pos[: x.shape[1]]
        h = self.drop(h)
        if self.layers is not None:
            h = self.layers(h, src_key_padding_mask=~mask)
        return self.norm(h) * mask.unsqueeze(-1)


class TimePointerHead(nn.Module):
    """The LM head plus a pointer from the decoder to the frames for time tokens.

    A plain time-token vocabulary must learn, from data alone, which of N output rows
    goes with which frame position. Here the logit of ``<time_k>`` also gets
    ``q(h) . k(v_j) / sqrt(d)``, where v_j is the encoded frame at relative time bin k:
    saying "when" becomes pointing at the frame the decoder attends to. Frames are
    sampled uniformly (``densevid.data.sample_frames``), so frame j stands at relative
    time (j + 0.5) / F. ``memory`` (the visual stream's states, [B, F, d]) is set by
    ``DenseVideoModel.encode`` before every decoder pass; beams repeat each video.
    """

    def __init__(self, base: nn.Linear, n_time_tokens: int, time_offset: int) -> None:
        super().__init__()
        self.base = base
        d = base.in_features
        self.query = nn.Linear(d, d, bias=False)
        self.key = nn.Linear(d, d, bias=False)
        self.n_time_tokens = n_time_tokens
        self.time_offset = time_offset
        self.memory: torch.Tensor | None = None

    @property
    def weight(self) -> torch.Tensor:  # what transformers reads of an output layer
        return self.base.weight

    def frame_of_bin(self, n_frames: int, device: torch.device) -> torch.Tensor:
        """For each time bin, the frame whose slice [j, j + 1) / F holds its middle."""
        k = torch.arange(self.n_time_tokens, device=device, dtype=torch.float32)
        centre = (k + 0.5) / (self.n_time_tokens - 1)  # bin k = [k, k+1) / (N-1)
        j = torch.floor(centre * n_frames).long()
        return j.clamp(0, n_frames - 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        logits = self.base(h)
        if self.memory is None:
            return logits
        mem = self.memory
        if mem.shape[0] != h.shape[0]:  # beam search: each video repeated per beam
            mem = mem.repeat_interleave(h.shape[0] // mem.shape[0], dim=0)
        keys = self.key(mem[:, self.frame_of_bin(mem.shape[1], mem.device)])
        scores = self.query(h) @ keys.transpose(1, 2) / math.sqrt(h.shape[-1])
        t0 = self.time_offset
        pad = (t0, logits.shape[-1] - t0 - self.n_time_tokens)
        return logits + nn.functional.pad(scores.to(logits.dtype), pad)


class DenseVideoModel(nn.Module):
    """Frames (+ audio, + speech) in, one time-token sequence of events out.

    ``tokenizer`` is attached by ``build_model``/``load_model`` so decoding and
    ``caption`` can be built on the model alone.
    """

    def __init__(self, config: ModelConfig, lm: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.lm = lm
        d = lm.config.d_model
        self.visual = TemporalEncoder(
            config.visual_dim,
            d,
            config.n_frames,
            config.n_temporal_layers,
            config.n_temporal_heads,
            config.dropout,
            config.input_norm,
            config.standardize,
            config.temporal_conv,
        )
        self.audio = (
            TemporalEncoder(
                config.audio_dim,
                d,
                config.n_audio_frames,
                config.n_temporal_layers,
                config.n_temporal_heads,
                config.dropout,
                config.input_norm,
                config.standardize,
                config.temporal_conv,
            )
            if config.use_audio
            else None
        )
        if config.time_pointer and not isinstance(lm.lm_head, TimePointerHead):
            lm.lm_head = TimePointerHead(
                lm.lm_head, config.n_time_tokens, config.time_offset
            )
        # per frame: event under way, starting, ending (logits); an auxiliary task
        # that tells the temporal encoder where events are from the first step on
        self.frame_head = nn.Linear(d, 3) if config.frame_events else None
        if not config.use_speech:
            # the LM encoder only reads speech: without it its layers get no gradient
            # (which DDP rejects) and need no optimizer state
            shared = {id(p) for p in lm.get_input_embeddings().parameters()}
            for p in lm.get_encoder().parameters():
                if id(p) not in shared:
                    p.requires_grad_(False)
        self.tokenizer: Any = None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def time_tokenizer(self):
        from densevid.text import TimeTokenizer

        if self.tokenizer is None:
            raise DensevidError("model has no tokenizer attached; use load_model")
        return TimeTokenizer(self.tokenizer, self.config.n_time_tokens)

    def encode(
        self,
        visual: torch.Tensor,
        visual_mask: torch.Tensor,
        audio: torch.Tensor | None = None,
        audio_mask: torch.Tensor | None = None,
        speech_ids: torch.Tensor | None = None,
        speech_mask: torch.Tensor | None = None,
        **_: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encodes every stream and concatenates them along time.

        Args:
            visual: [B, F, D_v] frame features; visual_mask: [B, F] bool.
            audio: [B, Fa, D_a]; audio_mask: [B, Fa] (when the model has audio).
            speech_ids: [B, S] token ids; speech_mask: [B, S] (when it has speech).

        Returns:
            hidden [B, L, d_model] and its attention mask [B, L] (long).
        """
        cfg = self.config
        for name, x, dim, extractor in (
            ("visual", visual, cfg.visual_dim, cfg.visual_features),
            ("audio", audio, cfg.audio_dim, cfg.audio_features),
        ):
            if x is not None and dim and x.shape[-1] != dim:
                raise DensevidError(
                    f"{name} features ({extractor}) are {x.shape[-1]}-d but the model "
                    f"reads {dim}-d: extracted by another version of the extractor "
                    "or with other options than the model was trained on"
                )
        states = [self.visual(visual, visual_mask)]
        masks = [visual_mask]
        if isinstance(self.lm.lm_head, TimePointerHead):
            self.lm.lm_head.memory = states[0]
        if self.audio is not None:
            if audio is None or audio_mask is None:
                raise DensevidError("this model needs audio features")
            states.append(self.audio(audio, audio_mask))
            masks.append(audio_mask)
        if self.config.use_speech:
            if speech_ids is None or speech_mask is None:
                raise DensevidError("this model needs a speech transcript")
            enc = self.lm.get_encoder()(
                input_ids=speech_ids, attention_mask=speech_mask
            )
            states.append(enc.last_hidden_state)  # (B, S, d)
            masks.append(speech_mask.bool())
        hidden = torch.cat(states, dim=1)
        mask = torch.cat([m.bool() for m in masks], dim=1).long()
        return hidden, mask

    def forward(
        self, labels: torch.Tensor, with_frames: bool = False, **inputs: torch.Tensor
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced logits [B, T, V] for target ids ``labels`` [B, T]
        (padded with -100); with ``with_frames``, also the frame-event logits
        [B, F, 3] (under way, start, end) of a model with ``frame_events``."""
        from transformers.modeling_outputs import BaseModelOutput

        hidden, mask = self.encode(**inputs)
        decoder_input_ids = self.lm._shift_right(labels)
        out = self.lm(
            encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
            attention_mask=mask,
            decoder_input_ids=decoder_input_ids,
            use_cache=False,
        )
        if not with_frames:
            return out.logits
        if self.frame_head is None:
            raise DensevidError("this model has no frame-event head (frame_events)")
        n_frames = inputs["visual"].shape[1]  # the visual stream comes first
        return out.logits, self.frame_head(hidden[:, :n_frames])

    def caption(self, video: str | os.PathLike, options: Any = None) -> Any:
        """Events of one video file; see ``densevid.caption.caption``."""
        from densevid.caption import caption

        return caption(self, video, options)

    @torch.no_grad()
    def log_likelihood(
        self, labels: torch.Tensor, **inputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sum of log p(token) and number of tokens per reference sequence ([B], [B]).

        The research plan's measure: per-token log-likelihood = sum / count,
        perplexity = exp(-sum / count), totalled over a split.
        """
        logits = self.forward(labels, **inputs).float()
        return token_log_likelihood(logits, labels)


def token_log_likelihood(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence sum of target log-probs and token count; -100 labels ignored."""
    logp = torch.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    valid = labels != IGNORE_INDEX
    picked = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, T)
    return (picked * valid).sum(-1), valid.sum(-1)


def _build_lm(config: ModelConfig, vocab_size: int) -> nn.Module:
    from transformers import T5Config, T5ForConditionalGeneration

    if config.lm_config:
        lm_config = T5Config.from_dict(config.lm_config)
        return T5ForConditionalGeneration(lm_config)
    if config.lm:
        try:
            lm = T5ForConditionalGeneration.from_pretrained(config.lm)
        except (OSError, ValueError) as e:
            raise DensevidError(f"{config.lm}: cannot load a T5 model ({e})") from e
        if lm.config.dropout_rate != config.dropout:
            lm.config.dropout_rate = config.dropout
        lm.resize_token_embeddings(vocab_size)
        return lm
    lm_config = T5Config(
        vocab_size=vocab_size,
        d_model=config.d_model,
        d_ff=config.d_ff,
        d_kv=config.d_kv,
        num_layers=config.n_layers,
        num_decoder_layers=config.n_decoder_layers,
        num_heads=config.n_heads,
        dropout_rate=config.dropout,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    lm = T5ForConditionalGeneration(lm_config)
    # transformers initialises an untied T5 head with std 1, which puts initial
    # logits at std ~sqrt(d_model) (loss ~60 instead of ~log V); scale it to 1/sqrt(d)
    with torch.no_grad():
        lm.lm_head.weight.normal_(0.0, config.d_model**-0.5)
    return lm


def build_model(config: ModelConfig, tokenizer: Any) -> DenseVideoModel:
    """A model with fresh temporal encoders around a new or pretrained T5.

    Fills ``config.vocab_size`` and ``config.lm_config`` so the saved config.json is
    complete.
    """
    from densevid.text import add_time_tokens

    if config.visual_dim < 1:
        raise DensevidError("model config: visual_dim must be set (feature dimension)")
    config.time_offset = add_time_tokens(tokenizer, config.n_time_tokens)
    vocab_size = len(tokenizer)
    lm = _build_lm(config, vocab_size)
    if lm.get_input_embeddings().num_embeddings < vocab_size:
        lm.resize_token_embeddings(vocab_size)
    config.vocab_size = vocab_size
    config.lm_config = json.loads(lm.config.to_json_string(use_diff=False))
    config.d_model = lm.config.d_model
    model = DenseVideoModel(config, lm)
    model.tokenizer = tokenizer
    return model


def save_model(model: DenseVideoModel, out_dir: str | os.PathLike) -> None:
    """Writes config.json, model.safetensors and the tokenizer files."""
    from safetensors.torch import save_model as save_safetensors

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
    from safetensors.torch import load_model as load_safetensors

    from densevid.text import load_tokenizer

    path = resolve_checkpoint(name_or_dir)
    if not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
        raise DensevidError(
            f"{name_or_dir}: not a checkpoint directory (needs {CONFIG_NAME} and "
            f"{WEIGHTS_NAME}, as 'densevid train' writes)"
        )
    config = ModelConfig.load(path / CONFIG_NAME)
    tokenizer = load_tokenizer(path, config.n_time_tokens)
    model = DenseVideoModel(config, _build_lm(config, config.vocab_size))
    try:
        load_safetensors(model, str(path / WEIGHTS_NAME))
    except (RuntimeError, OSError) as e:
        raise DensevidError(f"{path / WEIGHTS_NAME}: weights do not fit ({e})") from e
    model.tokenizer = tokenizer
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device is not None:
        model.to(device)
    return model.eval()


def unwrap(model: nn.Module) -> DenseVideoModel:
    """The DenseVideoModel inside a DistributedDataParallel wrapper, if any."""
    return getattr(model, "module", model)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def perplexity(sum_logp: float, n_tokens: int) -> float:
    return math.exp(-sum_logp / max(n_tokens, 1))

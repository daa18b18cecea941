"""Tokenizer and time tokens: how events and transcripts become token sequences.

The joint model reads and writes one sequence per video in which every event is
``<time_s> <time_e> caption``. Times are relative: ``k = round(t / duration * (N - 1))``
clipped to ``[0, N - 1]``, decoded as ``t = k * duration / (N - 1)``. Rounding, not the
starting design's floor (docs/design.md, "Time tokens and quantisation"): with floor
every decoded time is early by half a bin on average, which on the synthetic test split
caps F1 of exact events at 0.858 instead of 0.941 (``bench/quantisation_ceiling.py``).
The ``N`` time tokens are appended to the LM vocabulary with contiguous ids, so a token
is a time token iff ``time_offset <= id < time_offset + N``.

Two tokenizers are supported:

- a small BPE tokenizer trained here from the training captions with the ``tokenizers``
library (the offline case: tests and the bundled model), saved with ``save_pretrained``
and loaded with ``AutoTokenizer.from_pretrained(local_dir)``; - any T5-family tokenizer
by hub name or path (``t5-base``), to which the time tokens are added.

``T5Tokenizer(vocab_file=...)`` is deliberately not used: in transformers 5.x it maps
every token to ``<unk>`` without complaint.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from densevid.errors import DensevidError
from densevid.events import Event

logger = logging.getLogger(__name__)

N_TIME_TOKENS = 100
TIME_TOKEN = "<time_{}>"
PAD, EOS, UNK = "<pad>", "</s>", "<unk>"
# Sentinels for T5 span corruption (the denoising pretraining objective).
SENTINEL = "<extra_id_{}>"
N_SENTINELS = 20
DEFAULT_VOCAB_SIZE = 2000


def quantize_time(t: float, duration: float, n_bins: int = N_TIME_TOKENS) -> int:
    """Seconds -> nearest time bin: ``round(t / duration * (N - 1))`` clipped to
    [0, N-1] (halves round up)."""
    if duration <= 0 or not math.isfinite(duration):
        raise DensevidError(f"video duration must be > 0 to quantise time: {duration}")
    k = math.floor(t / duration * (n_bins - 1) + 0.5)
    return min(max(k, 0), n_bins - 1)


def dequantize_time(k: float, duration: float, n_bins: int = N_TIME_TOKENS) -> float:
    """Time bin (fractional between bins) -> seconds: ``k * duration / (N - 1)``."""
    return k * duration / (n_bins - 1)


def train_tokenizer(
    texts: Iterable[str],
    out_dir: str | os.PathLike | None = None,
    *,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    n_time_tokens: int = N_TIME_TOKENS,
    n_sentinels: int = N_SENTINELS,
) -> Any:
    """Trains a small BPE tokenizer (sentencepiece-style word boundaries) on captions.

    BPE rather than unigram because on a small corpus it still reaches whole-word
    tokens for frequent words, which keeps the target sequences short.

    Returns:
        a transformers fast tokenizer with pad=0, eos=1, unk=2, the sentinels and the
        time tokens added; saved to ``out_dir`` when given.
    """
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise DensevidError("cannot train a tokenizer: no non-empty captions given")
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[PAD, EOS, UNK], show_progress=False
    )
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", special_tokens=[(EOS, 1)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK
    )
    fast.add_tokens(
        [SENTINEL.format(i) for i in range(n_sentinels)], special_tokens=True
    )
    add_time_tokens(fast, n_time_tokens)
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast


def add_time_tokens(tokenizer: Any, n_time_tokens: int = N_TIME_TOKENS) -> int:
    """Appends the time tokens (no-op when present); returns the id of ``<time_0>``."""
    names = [TIME_TOKEN.format(i) for i in range(n_time_tokens)]
    vocab = tokenizer.get_vocab()
    if names[0] not in vocab:
        tokenizer.add_tokens(names, special_tokens=True)
    return time_offset(tokenizer, n_time_tokens)


def time_offset(tokenizer: Any, n_time_tokens: int = N_TIME_TOKENS) -> int:
    """The id of ``<time_0>``, checking that the N time tokens have contiguous ids."""
    ids = tokenizer.convert_tokens_to_ids(
        [TIME_TOKEN.format(0), TIME_TOKEN.format(n_time_tokens - 1)]
    )
    unk = tokenizer.unk_token_id
    if unk in ids or ids[1] - ids[0] != n_time_tokens - 1:
        raise DensevidError(
            f"tokenizer has no {n_time_tokens} contiguous time tokens "
            f"({TIME_TOKEN.format(0)}...); build it with densevid.text"
        )
    return ids[0]


def load_tokenizer(name_or_dir: str | os.PathLike, n_time_tokens: int = N_TIME_TOKENS):
    """Loads a saved or hub tokenizer and makes sure it has the time tokens."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_dir))
    except (OSError, ValueError) as e:
        raise DensevidError(f"{name_or_dir}: cannot load a tokenizer ({e})") from e
    add_time_tokens(tokenizer, n_time_tokens)
    return tokenizer


class TimeTokenizer:
    """Turns events and transcripts into token ids and generated ids back into events.

    Args:
        tokenizer: a transformers tokenizer holding the time tokens.
        n_time_tokens: N, the number of time bins.
    """

    def __init__(self, tokenizer: Any, n_time_tokens: int = N_TIME_TOKENS) -> None:
        self.tokenizer = tokenizer
        self.n_time_tokens = n_time_tokens
        self.time_offset = time_offset(tokenizer, n_time_tokens)
        self.pad_id = tokenizer.pad_token_id
        self.eos_id = tokenizer.eos_token_id
        self.unk_id = tokenizer.unk_token_id
        self.vocab_size = len(tokenizer)

    def is_time(self, token_id: int) -> bool:
        return self.time_offset <= token_id < self.time_offset + self.n_time_tokens

    def time_id(self, t: float, duration: float) -> int:
        return self.time_offset + quantize_time(t, duration, self.n_time_tokens)

    def time_of(self, token_id: int, duration: float, shift: float = 0.0) -> float:
        """Seconds of a time token, ``shift`` bins (fractional) after its bin,
        clipped to the video."""
        k = token_id - self.time_offset + shift
        t = dequantize_time(k, duration, self.n_time_tokens)
        return min(max(t, 0.0), duration)

    def encode_text(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def encode_events(
        self,
        events: Sequence[Event] | Sequence[dict],
        duration: float,
        *,
        max_length: int | None = None,
    ) -> list[int]:
        """Events -> ``<t_s> <t_e> caption ... </s>``, sorted by (start, end).

        Events that do not fit in ``max_length`` (counting the final ``</s>``) are left
        out whole rather than cut mid-caption. Accepts Events or transcript dicts
        ``{"start", "end", "text"}``.
        """
        items = [_as_triple(e) for e in events]
        items.sort(key=lambda x: (x[0], x[1]))
        ids: list[int] = []
        for start, end, text in items:
            piece = [self.time_id(start, duration), self.time_id(end, duration)]
            piece += self.encode_text(text)
            if max_length is not None and len(ids) + len(piece) + 1 > max_length:
                break
            ids += piece
        return ids + [self.eos_id]

    def decode_events(
        self,
        ids: Sequence[int],
        duration: float,
        token_logprobs: Sequence[float] | None = None,
        time_shifts: Sequence[float] | None = None,
    ) -> list[Event]:
        """Generated ids -> events, tolerant of any sequence.

        Reads ``<t_s> <t_e> text`` groups; stops at ``</s>``; drops groups with fewer
        than two times, no text, or ``end <= start`` (docs/design.md). Extra time
        tokens in a row restart the group with the latest two. An event's score is
        the mean log-probability of its tokens when ``token_logprobs`` is given;
        ``time_shifts`` (per position, in bins) place times between bins.
        """
        events: list[Event] = []
        times: list[tuple[int, int]] = []  # (position, token id)
        text_pos: list[int] = []

        def flush() -> None:
            if len(times) >= 2 and text_pos:
                (p0, s_id), (p1, e_id) = times[-2], times[-1]
                shifts = (0.0, 0.0)
                if time_shifts is not None:
                    shifts = (float(time_shifts[p0]), float(time_shifts[p1]))
                start = self.time_of(s_id, duration, shifts[0])
                end = self.time_of(e_id, duration, shifts[1])
                text = self.tokenizer.decode(
                    [ids[p] for p in text_pos], skip_special_tokens=True
                ).strip()
                if text and end > start:
                    score = None
                    if token_logprobs is not None:
                        pos = [p0, p1, *text_pos]
                        score = float(sum(token_logprobs[p] for p in pos) / len(pos))
                    events.append(Event(start, end, text, score))

        for i, token in enumerate(ids):
            token = int(token)
            if token == self.eos_id:
                break
            if token == self.pad_id:
                continue
            if self.is_time(token):
                if text_pos:
                    flush()
                    times, text_pos = [], []
                times.append((i, token))
            else:
                text_pos.append(i)
        flush()
        return events

    def encode_speech(
        self, sentences: Sequence[dict], duration: float, max_length: int
    ) -> list[int]:
        """A transcript ``[{start, end, text}]`` -> time-tokenised ids for the LM
        encoder (the same grammar as the targets, cut to ``max_length``)."""
        return self.encode_events(sentences, duration, max_length=max_length)


def _as_triple(e: Event | dict) -> tuple[float, float, str]:
    if isinstance(e, Event):
        return e.start, e.end, e.text
    try:
        return float(e["start"]), float(e["end"]), str(e["text"])
    except (KeyError, TypeError, ValueError) as err:
        raise DensevidError(f"expected {{start, end, text}}, got {e!r}") from err


def save_tokenizer(tokenizer: Any, out_dir: str | os.PathLike) -> None:
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out_dir))

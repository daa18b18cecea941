"""Generation of time-token sequences and their parsing into events.

Beam search (default 4 beams) or greedy search through transformers' ``generate``,
with a grammar that keeps every sequence parseable (docs/design.md, "Decoding
grammar"): time tokens come in ``start end`` pairs with ``end > start``, starts never
go backwards, at least one text token follows each pair, and ``</s>`` may only close a
complete event. Each event's
score is the mean log-probability of its tokens under the model (a teacher-forced pass
over the chosen sequence), so greedy and beam results are scored alike.

A model with a frame-event head (``model.frame_events``) also says, per frame, how
likely an event starts or ends there; each decoded boundary then moves to the
strongest such peak within ``refine_frames`` frames of it, placed between frames by a
parabola through the log-probabilities: finer than the time tokens' bins.

Each time token is also read between bins: the chosen bin plus the mean offset of
the model's probabilities over the bins within ``soft_time`` of it (a model trained
with ``time_sigma`` spreads them around where it thinks the boundary is).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
from torch import nn

from densevid.config import DecodingOptions, ModelConfig
from densevid.events import Event, VideoEvents
from densevid.inputs import collate, model_inputs, to_device
from densevid.text import TimeTokenizer

logger = logging.getLogger(__name__)

MAX_SENTINELS = 100  # T5 ships 100 <extra_id_i> tokens; never generated


class Network(Protocol):
    """One network as decoding drives it (a ``DenseVideoModel``)."""

    lm: Any  # transformers' T5ForConditionalGeneration
    frame_head: nn.Module | None

    def encode(self, **inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


class Decodable(Protocol):
    """What decoding and captioning need of a model: a ``DenseVideoModel``, whose
    ``members`` are itself, or an ``Ensemble``, whose members are searched with their
    averaged probabilities. Decoding depends on this shape, not on those classes, so
    that the model can offer ``caption`` as a method without an import circle."""

    config: ModelConfig
    training: bool

    @property
    def members(self) -> Sequence[Network]: ...

    @property
    def time_tokenizer(self) -> TimeTokenizer: ...

    @property
    def device(self) -> torch.device: ...

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...

    def log_likelihood(
        self, labels: torch.Tensor, **inputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


def mix(logps: Sequence[torch.Tensor]) -> torch.Tensor:
    """log of the mean of the members' probabilities, from their log-probabilities
    (one member's come back as they are)."""
    if len(logps) == 1:
        return logps[0]
    return torch.logsumexp(torch.stack(list(logps)), dim=0) - math.log(len(logps))


class TimeGrammar:
    """A logits processor masking tokens that would break the event grammar.

    State is read from the prefix alone (so it survives beam reordering):
    the number of time tokens so far says whether the next one is a start or an end,
    the largest start so far bounds the next start, and the last token says whether a
    caption has begun. Text may not open a sequence: the first token is a time or
    ``</s>`` (no events).
    """

    def __init__(
        self,
        time_offset: int,
        n_time_tokens: int,
        eos_id: int,
        vocab_size: int,
        banned: list[int],
        constrained: bool = True,
        eos_bias: float = 0.0,
    ) -> None:
        self.lo, self.n = time_offset, n_time_tokens
        self.eos_id = eos_id
        self.eos_bias = eos_bias
        self.constrained = constrained
        self.banned = torch.tensor(sorted(set(banned)), dtype=torch.long)
        self.vocab_size = vocab_size
        is_time = torch.zeros(vocab_size, dtype=torch.bool)
        is_time[time_offset : time_offset + n_time_tokens] = True
        self.is_time_vocab = is_time

    def allowed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[R, L] prefixes (decoder start first) -> [R, V] bool mask of allowed ids."""
        r, v = input_ids.shape[0], self.vocab_size
        dev = input_ids.device
        ok = torch.ones(r, v, dtype=torch.bool, device=dev)
        if len(self.banned):
            ok[:, self.banned.to(dev)] = False
        if not self.constrained:
            return ok
        ids = input_ids[:, 1:]  # drop the decoder start token
        is_time = (ids >= self.lo) & (ids < self.lo + self.n)
        count = is_time.cumsum(dim=1)  # (R, L-1)
        n_times = count[:, -1] if ids.shape[1] else torch.zeros(r, device=dev).long()
        is_start = is_time & (count % 2 == 1)
        bins = (ids - self.lo).clamp(min=0)
        last_start = torch.where(is_start, bins, torch.full_like(bins, -1))
        last_start = last_start.max(dim=1).values if ids.shape[1] else n_times - 1
        if ids.shape[1]:
            last_is_time = is_time[:, -1]
        else:
            last_is_time = torch.zeros(r, dtype=torch.bool, device=dev)
        k = torch.arange(self.n, device=dev)  # (N,)
        time_ok = torch.zeros(r, self.n, dtype=torch.bool, device=dev)
        text_ok = torch.ones(r, dtype=torch.bool, device=dev)
        eos_ok = torch.ones(r, dtype=torch.bool, device=dev)
        after_start = last_is_time & (n_times % 2 == 1)
        after_end = last_is_time & (n_times % 2 == 0)
        free = ~last_is_time  # at the beginning or inside a caption
        # after a start time: an end strictly later, nothing else
        time_ok |= after_start[:, None] & (k[None] > last_start[:, None])
        # at the beginning / in a caption: a start no earlier than the last one and
        # leaving room for an end (so not the last bin)
        time_ok |= (
            free[:, None] & (k[None] >= last_start[:, None]) & (k[None] < self.n - 1)
        )
        started = n_times > 0
        text_ok &= (free & started) | after_end
        eos_ok &= free
        ok[:, self.lo : self.lo + self.n] &= time_ok
        ok[:, ~self.is_time_vocab.to(dev)] &= text_ok[:, None]
        ok[:, self.eos_id] = eos_ok
        return ok

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        mask = self.allowed(input_ids)  # (R, V)
        v = min(scores.shape[-1], mask.shape[-1])
        out = scores.clone()
        if self.eos_bias:
            out[:, self.eos_id] += self.eos_bias
        out[:, :v] = out[:, :v].masked_fill(~mask[:, :v], -math.inf)
        if scores.shape[-1] > v:  # LM rows beyond the tokenizer: never generated
            out[:, v:] = -math.inf
        return out


def make_grammar(model: Decodable, options: DecodingOptions) -> TimeGrammar:
    tt = model.time_tokenizer
    tok = tt.tokenizer
    vocab = tok.get_vocab()
    banned = [tt.pad_id]
    if tt.unk_id is not None:
        banned.append(tt.unk_id)
    banned += [
        vocab[f"<extra_id_{i}>"]
        for i in range(MAX_SENTINELS)
        if f"<extra_id_{i}>" in vocab
    ]
    return TimeGrammar(
        tt.time_offset,
        tt.n_time_tokens,
        tt.eos_id,
        tt.vocab_size,
        banned,
        constrained=options.constrained,
        eos_bias=options.eos_bias,
    )


class Generation(NamedTuple):
    """What ``generate`` returns: per video, one sequence and what reads it."""

    sequences: torch.Tensor  # [B, L], decoder start token first, pad after </s>
    token_logp: torch.Tensor  # [B, L-1], log p of sequences[:, 1:] under the model
    time_shifts: torch.Tensor  # [B, L-1], bins to move each time token by (soft_time)
    frame_probs: torch.Tensor | None  # [B, F, 3] frame-event head (refine_frames)


@torch.no_grad()
def generate(
    model: Decodable, batch: dict[str, Any], options: DecodingOptions | None = None
) -> Generation:
    """Generates one sequence per video.

    Args:
        model: a DenseVideoModel with its tokenizer, or an ``Ensemble`` of them
            (searched with its members' averaged probabilities).
        batch: collated inputs (``visual``, ``visual_mask``, optional streams).
    """
    from transformers import DynamicCache, EncoderDecoderCache, LogitsProcessorList
    from transformers.modeling_outputs import BaseModelOutput

    options = (options or DecodingOptions()).verify()
    inputs = model_inputs(batch)
    members = list(model.members)
    encodings = [m.encode(**inputs) for m in members]
    grammar = make_grammar(model, options)
    if len(members) > 1:
        sequences = beam_search(members, encodings, grammar, options)
    else:
        lm = members[0].lm
        hidden, mask = encodings[0]
        out = lm.generate(
            encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
            attention_mask=mask,
            num_beams=options.n_beams,
            do_sample=False,
            max_new_tokens=options.max_length,
            length_penalty=options.length_penalty,
            logits_processor=LogitsProcessorList([grammar]),
            # caches that grow a layer per decoder layer: the one transformers builds
            # from the config has num_layers (the encoder's count) and fails when the
            # decoder is deeper (n_decoder_layers > n_layers)
            past_key_values=EncoderDecoderCache(DynamicCache(), DynamicCache()),
            decoder_start_token_id=lm.config.decoder_start_token_id,
            eos_token_id=lm.config.eos_token_id,
            pad_token_id=lm.config.pad_token_id,
        )
        sequences = out if isinstance(out, torch.Tensor) else out.sequences
    # score the chosen sequences by teacher forcing on the same encoding
    eos = members[0].lm.config.eos_token_id
    labels = sequences[:, 1:].clone()
    after_eos = (labels == eos).long().cumsum(1) - (labels == eos).long() > 0
    labels[after_eos] = -100
    decoder_ids = sequences[:, :-1] if sequences.shape[1] > 1 else sequences
    logp = mix(
        [
            torch.log_softmax(
                m.lm(
                    encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
                    attention_mask=mask,
                    decoder_input_ids=decoder_ids,
                    use_cache=False,
                ).logits.float(),
                dim=-1,
            )
            for m, (hidden, mask) in zip(members, encodings, strict=True)
        ]
    )
    token_logp = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    token_logp = token_logp.masked_fill(labels == -100, 0.0)
    tt = model.time_tokenizer
    shifts = time_shifts(
        logp, labels, tt.time_offset, tt.n_time_tokens, options.soft_time
    )
    n_frames = inputs["visual"].shape[1]  # the visual stream comes first
    heads = [
        torch.sigmoid(m.frame_head(hidden[:, :n_frames]).float())
        for m, (hidden, _) in zip(members, encodings, strict=True)
        if options.refine_frames > 0 and getattr(m, "frame_head", None)
    ]
    frame_probs = torch.stack(heads).mean(0) if heads else None
    return Generation(sequences, token_logp, shifts, frame_probs)


def beam_search(
    members: Sequence[Network],
    encodings: list[tuple[torch.Tensor, torch.Tensor]],
    grammar: TimeGrammar,
    options: DecodingOptions,
) -> torch.Tensor:
    """Beam search (greedy with one beam) over the members' averaged next-token
    probabilities; the ids [B, L] of the best sequence per video, decoder start
    first, pad after ``</s>``.

    As transformers' search for one model: each step keeps the ``n_beams`` best
    continuations of every video; a ``</s>`` among the best ``n_beams`` closes a
    hypothesis scored sum(log p) / length ** length_penalty; a video is done when
    it holds ``n_beams`` closed hypotheses and no open beam can beat the worst.
    """
    from transformers import DynamicCache, EncoderDecoderCache
    from transformers.modeling_outputs import BaseModelOutput

    k = options.n_beams
    cfg = members[0].lm.config
    start, eos, pad = cfg.decoder_start_token_id, cfg.eos_token_id, cfg.pad_token_id
    b = encodings[0][0].shape[0]
    device = encodings[0][0].device
    states = [
        (
            BaseModelOutput(last_hidden_state=h.repeat_interleave(k, 0)),
            m.repeat_interleave(k, 0),
        )
        for h, m in encodings
    ]
    caches = [EncoderDecoderCache(DynamicCache(), DynamicCache()) for _ in members]
    ids = torch.full((b * k, 1), start, dtype=torch.long, device=device)
    scores = torch.full((b, k), -math.inf, device=device)
    scores[:, 0] = 0.0  # the first step expands one beam per video
    closed: list[list[tuple[float, list[int]]]] = [[] for _ in range(b)]
    done = [False] * b
    lp = options.length_penalty
    for _ in range(options.max_length):
        logps = []
        for member, (enc, mask), cache in zip(members, states, caches, strict=True):
            logits = member.lm(
                encoder_outputs=enc,
                attention_mask=mask,
                decoder_input_ids=ids[:, -1:],
                past_key_values=cache,
                use_cache=True,
            ).logits[:, -1]
            logps.append(torch.log_softmax(logits.float(), dim=-1))
        logp = grammar(ids, mix(logps))
        vocab = logp.shape[-1]
        total = (scores.reshape(-1, 1) + logp).reshape(b, -1)
        top, flat = total.topk(min(2 * k, total.shape[1]), dim=1)
        sources, next_ids, next_scores = [], [], []
        length = ids.shape[1]  # generated tokens once this step's is added
        for i in range(b):
            keep: list[tuple[float, int, int]] = []
            if not done[i]:
                ranked = zip(top[i].tolist(), flat[i].tolist(), strict=True)
                for rank, (score, index) in enumerate(ranked):
                    if score == -math.inf or len(keep) == k:
                        break
                    beam, token = divmod(index, vocab)
                    if token != eos:
                        keep.append((score, beam, token))
                    elif rank < k:
                        seq = ids[i * k + beam, 1:].tolist() + [eos]
                        closed[i].append((score / length**lp, seq))
                closed[i] = sorted(closed[i], key=lambda c: -c[0])[:k]
                best_open = keep[0][0] / length**lp if keep else -math.inf
                done[i] = (k == 1 and bool(closed[i])) or (
                    len(closed[i]) == k and closed[i][-1][0] >= best_open
                )
            if done[i]:
                keep = []
            keep += [(-math.inf, 0, pad)] * (k - len(keep))
            for score, beam, token in keep:
                sources.append(i * k + beam)
                next_ids.append(token)
                next_scores.append(score)
        if all(done):
            break
        order = torch.tensor(sources, device=device)
        for cache in caches:
            cache.reorder_cache(order)
        ids = torch.cat([ids[order], torch.tensor(next_ids, device=device)[:, None]], 1)
        scores = torch.tensor(next_scores, device=device).reshape(b, k)
    for i in range(b):  # out of length: the open beams compete as they are
        if not done[i]:
            for j in range(k):
                if scores[i, j] > -math.inf:
                    seq = ids[i * k + j, 1:].tolist()
                    closed[i].append((float(scores[i, j]) / len(seq) ** lp, seq))
    best = [max(c, key=lambda c: c[0])[1] if c else [eos] for c in closed]
    out = torch.full((b, 1 + max(len(s) for s in best)), pad, device=device)
    out[:, 0] = start
    for i, seq in enumerate(best):
        out[i, 1 : 1 + len(seq)] = torch.tensor(seq, device=device)
    return out


def time_shifts(
    logp: torch.Tensor, ids: torch.Tensor, time_offset: int, n_bins: int, window: int
) -> torch.Tensor:
    """Per position of ``ids`` [B, L] holding a time token: the mean offset (bins)
    of ``logp``'s [B, L, V] probabilities over the time bins within ``window`` of
    it, i.e. where between bins the model puts the boundary; 0 elsewhere."""
    shifts = torch.zeros(ids.shape, dtype=torch.float32, device=ids.device)
    is_time = (ids >= time_offset) & (ids < time_offset + n_bins)
    if window == 0 or not is_time.any():
        return shifts
    k = ids[is_time] - time_offset  # (M,)
    offsets = torch.arange(-window, window + 1, device=ids.device)  # (W,)
    neighbours = k[:, None] + offsets[None]  # (M, W)
    inside = (neighbours >= 0) & (neighbours < n_bins)
    time_logp = logp[is_time][:, time_offset : time_offset + n_bins]  # (M, N)
    p = time_logp.gather(1, neighbours.clamp(0, n_bins - 1)).exp() * inside
    mean = (p * offsets[None]).sum(1) / p.sum(1).clamp(min=1e-12)
    shifts[is_time] = mean.float()
    return shifts


def decode(
    model: Decodable,
    batch: dict[str, Any],
    options: DecodingOptions | None = None,
) -> list[VideoEvents]:
    """Generates and parses events for every video of a collated batch.

    The batch must carry ``durations`` (seconds, [B]) and ``video_ids``.

    Returns:
        one VideoEvents per video, events sorted by start, times in seconds.
    """
    options = (options or DecodingOptions()).verify()
    was_training = model.training
    model.eval()
    try:
        gen = generate(model, batch, options)
    finally:
        model.train(was_training)
    tt = model.time_tokenizer
    durations = batch["durations"].tolist()
    results = []
    for i, video_id in enumerate(batch["video_ids"]):
        events = tt.decode_events(
            gen.sequences[i, 1:].tolist(),
            durations[i],
            gen.token_logp[i].tolist(),
            gen.time_shifts[i].tolist(),
        )
        if gen.frame_probs is not None:
            probs = gen.frame_probs[i].cpu().numpy()
            events = [
                refine_event(e, probs, durations[i], options.refine_frames)
                for e in events
            ]
        events = [_clip(e, durations[i]) for e in events]
        results.append(VideoEvents(video_id, tuple(events), durations[i]).sorted())
    return results


@torch.no_grad()
def caption_segments(
    model: Decodable,
    batch: dict[str, Any],
    segments: Sequence[Sequence[tuple[float, float]]],
    options: DecodingOptions | None = None,
) -> list[VideoEvents]:
    """Captions for given segments: the "ground-truth proposals" setting in which
    two-stage systems (BMT, MDVC) report their best numbers.

    For each video the segments go in time order; each is written as its two time
    tokens after the earlier segments and their captions, and its caption is
    decoded greedily (averaged over an ensemble's members, under the time grammar,
    each member keeping its decoder's key/value cache) until the model would open
    another event or end the sequence. A segment whose caption would run past
    ``options.max_length`` is captioned again after only its own time tokens (a
    warning counts them), so that no segment loses its caption to the earlier ones.
    The batch must carry ``durations`` and ``video_ids``; ``segments[i]`` are
    (start, end) seconds of video i.

    Returns:
        one VideoEvents per video: the given segments, in time order, each with its
        caption and the mean log-probability of the caption's tokens as score.
    """
    options = (options or DecodingOptions()).verify()
    from transformers.modeling_outputs import BaseModelOutput

    was_training = model.training
    model.eval()
    try:
        inputs = model_inputs(batch)
        members = list(model.members)
        grammar = make_grammar(model, options)
        tt = model.time_tokenizer
        results = []
        restarted = n_segments = 0
        for i, video_id in enumerate(batch["video_ids"]):
            duration = float(batch["durations"][i])
            # one video at a time: encode also points the time head at its frames
            row = {k: v[i : i + 1] for k, v in inputs.items()}
            states = []
            for m in members:
                hidden, mask = m.encode(**row)
                states.append((BaseModelOutput(last_hidden_state=hidden), mask))
            decoder = _SegmentDecoder(members, states, grammar, tt, options.max_length)
            events = []
            for a, b in sorted(segments[i]):
                times = [tt.time_id(a, duration), tt.time_id(b, duration)]
                got = decoder.caption(times)
                if got is None:  # no room left after the earlier segments
                    restarted += 1
                    decoder.restart()
                    # None again: longer than max_length on its own, kept cut
                    got = decoder.caption(times) or decoder.cut
                caption, logps = got
                text = tt.tokenizer.decode(caption, skip_special_tokens=True).strip()
                score = float(np.mean(logps)) if logps else None
                events.append(Event(float(a), float(b), text, score))
                n_segments += 1
            results.append(VideoEvents(video_id, tuple(events), duration))
    finally:
        model.train(was_training)
    if restarted:
        logger.warning(
            "%d of %d segments were captioned after their own time tokens only: "
            "with the earlier segments the sequence passed max_length (%d tokens)",
            restarted,
            n_segments,
            options.max_length,
        )
    return results


class _SegmentDecoder:
    """One video's decoder sequence for ``caption_segments``: the token ids so far
    and each ensemble member's key/value cache of them."""

    def __init__(self, members, states, grammar, tt, max_length: int) -> None:
        self.members, self.states, self.grammar = members, states, grammar
        self.tt, self.max_length = tt, max_length
        self.device = states[0][1].device
        self.start_id = members[0].lm.config.decoder_start_token_id
        self.cut: tuple[list[int], list[float]] = ([], [])
        self.restart()

    def restart(self) -> None:
        self.ids = [self.start_id]
        self.caches: list[Any] = [None] * len(self.members)
        self.fed = 0  # how many of ids the caches hold

    def step(self) -> torch.Tensor:
        """Log-probabilities of the next token, averaged over the members."""
        new = torch.tensor([self.ids[self.fed :]], device=self.device)
        logps = []
        for k, (member, (enc, mask)) in enumerate(
            zip(self.members, self.states, strict=True)
        ):
            out = member.lm(
                encoder_outputs=enc,
                attention_mask=mask,
                decoder_input_ids=new,
                past_key_values=self.caches[k],
                use_cache=True,
            )
            self.caches[k] = out.past_key_values
            logps.append(torch.log_softmax(out.logits[:, -1].float(), dim=-1))
        self.fed = len(self.ids)
        return mix(logps)

    def caption(self, times: list[int]) -> tuple[list[int], list[float]] | None:
        """Greedy caption tokens (and their log-probabilities) after ``times``,
        appended to the sequence; None if it would pass ``max_length`` first (its
        tokens so far are kept in ``cut``; the sequence then needs ``restart``)."""
        self.ids += times
        caption: list[int] = []
        logps: list[float] = []
        while len(self.ids) < self.max_length:
            step = self.step()
            prefix = torch.tensor([self.ids], device=self.device)
            token = int(self.grammar(prefix, step)[0].argmax())
            if token == self.tt.eos_id or self.tt.is_time(token):
                return caption, logps
            caption.append(token)
            logps.append(float(step[0, token]))
            self.ids.append(token)
        self.cut = (caption, logps)
        return None


def decode_selecting(
    model: Decodable, batch: dict[str, Any], options: DecodingOptions | None = None
) -> list[VideoEvents]:
    """An ensemble's events with each caption chosen among its members' (seed 001):
    the segments come from the averaged search (``decode``); every member captions
    them (``caption_segments``), and per segment the caption naming the most
    concepts the members' concept heads find present wins, ties to the larger
    summed IDF (``densevid.concepts.select_caption``). Members without a concept
    head count no concepts, so the IDF alone decides."""
    from densevid.concepts import present_concepts, select_caption

    videos = decode(model, batch, options)
    members = list(model.members)
    segments = [sorted((e.start, e.end) for e in v.events) for v in videos]
    captions = [caption_segments(m, batch, segments, options) for m in members]
    inputs = model_inputs(batch)
    heads = [m for m in members if getattr(m, "concept_head", None) is not None]
    probs = (
        torch.stack([m.concept_probs(**inputs) for m in heads]).mean(0)
        if heads
        else None
    )
    first = members[0].config
    out = []
    for i, video in enumerate(videos):
        present = (
            present_concepts(probs[i], first.concepts) if probs is not None else []
        )
        events = []
        for j, (a, b) in enumerate(segments[i]):
            candidates = [c[i].events[j] for c in captions]
            k = select_caption([e.text for e in candidates], present, first.caption_idf)
            events.append(Event(a, b, candidates[k].text, candidates[k].score))
        out.append(VideoEvents(video.video_id, tuple(events), video.duration))
    return out


MIN_PEAK = 0.5  # a frame-event peak below this probability moves no boundary


def refine_time(t: float, p: Any, duration: float, window: int) -> float:
    """Moves boundary ``t`` (s) to the strongest peak of ``p`` ([F] probabilities
    that a boundary lies at frame j, frame j at relative time (j + 0.5) / F) within
    ``window`` frames, between frames by a parabola through log p; unchanged when
    no frame there reaches ``MIN_PEAK``."""
    n = len(p)
    pos = t / duration * n - 0.5  # in frame indices
    lo = max(0, math.floor(pos) - window + 1)
    hi = min(n - 1, math.ceil(pos) + window - 1)
    if hi < lo:
        return t
    j = lo + int(np.argmax(p[lo : hi + 1]))
    if p[j] < MIN_PEAK:
        return t
    delta = 0.0
    if 0 < j < n - 1:
        a, b, c = (math.log(max(float(x), 1e-6)) for x in p[j - 1 : j + 2])
        curve = a - 2 * b + c
        if curve < 0:
            delta = min(max(0.5 * (a - c) / curve, -0.5), 0.5)
    return min(max((j + 0.5 + delta) / n * duration, 0.0), duration)


def refine_event(event: Event, probs: Any, duration: float, window: int) -> Event:
    """``event`` with its start and end moved by ``refine_time`` (probs: [F, 3],
    columns under way / start / end); kept as it was if they would cross."""
    start = refine_time(event.start, probs[:, 1], duration, window)
    end = refine_time(event.end, probs[:, 2], duration, window)
    if end <= start:
        return event
    return replace(event, start=start, end=end)


def _clip(event: Event, duration: float) -> Event:
    end = min(event.end, duration)
    return replace(event, end=end) if end != event.end else event


@dataclass
class LikelihoodStats:
    """Teacher-forced log-likelihood of the reference sequences over a split."""

    sum_logp: float = 0.0
    n_tokens: int = 0
    n_videos: int = 0

    @property
    def per_token(self) -> float:
        return self.sum_logp / max(self.n_tokens, 1)

    @property
    def perplexity(self) -> float:
        return math.exp(-self.per_token)

    def to_dict(self) -> dict[str, float]:
        return {
            "log_likelihood": self.per_token,
            "perplexity": self.perplexity,
            "n_tokens": float(self.n_tokens),
        }


def ordered_loader(
    model: Any, dataset: torch.utils.data.Dataset, batch_size: int
) -> torch.utils.data.DataLoader:
    """The dataset's items in order, in batches padded with the model's pad id: what
    every pass over a dataset at inference reads."""
    pad_id = model.time_tokenizer.pad_id
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        collate_fn=lambda items: collate(items, pad_id),
    )


@torch.no_grad()
def decode_dataset(
    model: Decodable,
    dataset: torch.utils.data.Dataset,
    options: DecodingOptions | None = None,
    *,
    batch_size: int = 8,
    likelihood: bool = True,
    segments: dict[str, Sequence[tuple[float, float]]] | None = None,
    select: bool = False,
    verbose: bool = False,
) -> tuple[dict[str, VideoEvents], LikelihoodStats]:
    """Predicts every video of a dataset and scores its reference sequences.

    With ``segments`` (video id -> (start, end) seconds) the model captions those
    segments (``caption_segments``) instead of finding events; with ``select``, an
    ensemble chooses each caption among its members' (``decode_selecting``).

    Returns:
        video id -> predicted VideoEvents, and the per-token log-likelihood /
        perplexity of the references (the research plan's measure).
    """
    from tqdm import tqdm

    loader = ordered_loader(model, dataset, batch_size)
    was_training = model.training
    model.eval()
    device = model.device
    predictions: dict[str, VideoEvents] = {}
    stats = LikelihoodStats()
    try:
        for batch in tqdm(loader, desc="decode", disable=not verbose):
            batch = to_device(batch, device)
            if segments is None and select:
                videos = decode_selecting(model, batch, options)
            elif segments is None:
                videos = decode(model, batch, options)
            else:
                given = [segments.get(v, ()) for v in batch["video_ids"]]
                videos = caption_segments(model, batch, given, options)
            for video in videos:
                predictions[video.video_id] = video
            if likelihood:
                inputs = {k: v for k, v in batch.items() if k != "labels"}
                total, count = model.log_likelihood(batch["labels"], **inputs)
                stats.sum_logp += float(total.sum())
                stats.n_tokens += int(count.sum())
                stats.n_videos += len(batch["video_ids"])
    finally:
        model.train(was_training)
    return predictions, stats

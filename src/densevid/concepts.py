"""Semantic concepts: the frequent content words of the captions, predicted from the
temporal encoder (seed 001's semantic-aware training, seed 004's concept words), and
the caption choice across an ensemble that uses them (seed 001).

The model predicts which concepts a video shows (from its frames, pooled) and which
each event shows (from the frames of the event's window), trained with the
asymmetric multi-label loss of Ridnik et al. (2021): a few positives among many
negatives, so easy negatives are down-weighted and shifted. At decoding, an
ensemble's members each caption the same segments and, per segment, the caption
that mentions the most concepts the models believe present wins; ties go to the
caption with the larger summed IDF (the more specific one).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import torch

WORD = re.compile(r"[a-z]+")
# Words too common to tell videos apart (articles, pronouns, auxiliaries,
# prepositions, conjunctions); everything else may be a concept.
_FUNCTION_TEXT = """a an the this that these those it its they them their he him his she
her we you i me my our your is are was were be been being am do does did has have had
and or but so then than as of in on at to from by with into onto over under up down out
off for while when after before again also very there here which who what where how all
some any each other another one two same just not no"""
FUNCTION_WORDS = frozenset(_FUNCTION_TEXT.split())
ASL_GAMMA_NEG = 4.0  # focusing on hard negatives
ASL_GAMMA_POS = 0.0
ASL_MARGIN = 0.05  # negatives below this probability cost nothing


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def concept_vocabulary(
    captions: Iterable[str], n: int
) -> tuple[list[str], dict[str, float]]:
    """The ``n`` most frequent content words (ties alphabetical) and the IDF of
    every caption word (each caption one document)."""
    counts: Counter[str] = Counter()
    docs: Counter[str] = Counter()
    n_docs = 0
    for text in captions:
        w = words(text)
        counts.update(x for x in w if x not in FUNCTION_WORDS)
        docs.update(set(w))
        n_docs += 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    idf = {w: math.log(n_docs / c) for w, c in sorted(docs.items())}
    return [w for w, _ in ranked[:n]], idf


def concept_targets(texts: Sequence[str], concepts: Sequence[str]) -> torch.Tensor:
    """[len(texts), C] multi-hot: which concepts each text mentions."""
    index = {c: i for i, c in enumerate(concepts)}
    out = torch.zeros(len(texts), len(concepts))
    for row, text in enumerate(texts):
        for w in words(text):
            i = index.get(w)
            if i is not None:
                out[row, i] = 1.0
    return out


def asymmetric_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows of the summed asymmetric loss (ASL) of multi-label logits."""
    p = torch.sigmoid(logits.float())
    p_neg = (p - ASL_MARGIN).clamp(min=0)
    pos = targets * (1 - p) ** ASL_GAMMA_POS * torch.log(p.clamp(min=1e-8))
    neg = (1 - targets) * p_neg**ASL_GAMMA_NEG * torch.log((1 - p_neg).clamp(min=1e-8))
    return -(pos + neg).sum(-1).mean()


def window_mask(
    spans: Sequence[tuple[float, float]], duration: float, n_frames: int
) -> torch.Tensor:
    """[E, F] bool: the frames (frame j stands at (j + 0.5) / F of the video)
    inside each (start, end) span, or the nearest frame when none is."""
    centres = (torch.arange(n_frames) + 0.5) / n_frames * duration
    out = torch.zeros(len(spans), n_frames, dtype=torch.bool)
    for i, (s, e) in enumerate(spans):
        inside = (centres >= s) & (centres <= e)
        if not inside.any():
            inside[int(((centres - (s + e) / 2).abs()).argmin())] = True
        out[i] = inside
    return out


def pooled(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of [..., F, d] states over the frames ``mask`` [..., F] keeps."""
    m = mask.unsqueeze(-1).to(states.dtype)
    return (states * m).sum(-2) / m.sum(-2).clamp(min=1)


def concept_loss(
    head: torch.nn.Module,
    visual: torch.Tensor,
    visual_mask: torch.Tensor,
    events: Sequence[Sequence[tuple[float, float, str]]],
    durations: Sequence[float],
    concepts: Sequence[str],
) -> torch.Tensor:
    """ASL of the video-level and event-level concept predictions.

    Args:
        head: the model's concept head (d_model -> C).
        visual: [B, F, d] the visual stream's encoded frames; visual_mask [B, F].
        events: per video, (start s, end s, caption) of its target events.
        durations: seconds per video.
    """
    device = visual.device
    videos = pooled(visual, visual_mask)  # (B, d)
    texts = [" ".join(t for _, _, t in ev) for ev in events]
    loss = asymmetric_loss(head(videos), concept_targets(texts, concepts).to(device))
    rows, targets = [], []
    for b, ev in enumerate(events):
        if not ev:
            continue
        windows = window_mask([(s, e) for s, e, _ in ev], durations[b], visual.shape[1])
        windows = windows.to(device) & visual_mask[b][None].bool()
        rows.append(pooled(visual[b][None].expand(len(ev), -1, -1), windows))
        targets.append(concept_targets([t for _, _, t in ev], concepts))
    if rows:
        logits = head(torch.cat(rows))
        loss = loss + asymmetric_loss(logits, torch.cat(targets).to(device))
    return loss


def select_caption(
    candidates: Sequence[str],
    present: Iterable[str],
    idf: Mapping[str, float],
) -> int:
    """Index of the caption mentioning the most present concepts, then with the
    largest summed IDF of its distinct words; the first of equals."""
    present = set(present)

    def key(i: int) -> tuple[int, float, int]:
        w = set(words(candidates[i]))
        return (len(w & present), sum(idf.get(x, 0.0) for x in w), -i)

    return max(range(len(candidates)), key=key)


def present_concepts(probs: torch.Tensor, concepts: Sequence[str]) -> list[str]:
    """The concepts with probability above one half."""
    return [c for c, p in zip(concepts, probs.tolist(), strict=True) if p > 0.5]

"""Rewards of a whole predicted event sequence against a video's references, for
self-critical training (``densevid.training.scst``).

A caption metric alone rewards what is said, not where: the reward here scores the
events as the field's video-level metrics do, with CIDEr-D as the caption score
(seed 001 optimises METEOR/CIDEr; SODA's authors allow CIDEr in place of METEOR):

- ``soda``: SODA's F-measure of the best order-keeping one-to-one alignment of
  predicted and reference events, each pair worth tIoU x CIDEr-D;
- ``f1``: the proposals' F1 (mean over tIoU 0.3/0.5/0.7/0.9) times one plus the
  mean CIDEr-D of each prediction against the reference it overlaps most.

CIDEr-D's document frequencies come from the training captions (each caption one
document), fixed for the run, so that a pair's score does not depend on the batch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

import numpy as np

from densevid.events import Event
from densevid.metrics import densevid as dv
from densevid.metrics import soda as sd
from densevid.metrics.scorers import NgramCache, cider_pair, cider_vector, log_table

REWARDS = ("soda", "f1")
WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> str:
    """Lowercased alphanumeric words: the PTB tokenizer's effect on plain captions,
    without its cost."""
    return " ".join(WORD.findall(text.lower()))


class CiderD:
    """CIDEr-D (coco-caption's formula, ``scorers.cider_pair``) of one hypothesis
    against one reference, with document frequencies fixed by a caption corpus."""

    def __init__(self, corpus: Iterable[str]) -> None:
        self.ngrams = NgramCache()
        df: dict[tuple[str, ...], int] = {}
        n = 0
        for text in corpus:
            n += 1
            for gram in self.ngrams[words(text)].grams:
                df[gram] = df.get(gram, 0) + 1
        self.df = df
        self.log_n = math.log(max(n, 1))
        self.logs = log_table(max(df.values(), default=0))
        self.vectors: dict[str, tuple] = {}

    def vector(self, text: str) -> tuple:
        v = self.vectors.get(text)
        if v is None:
            if len(self.vectors) > 100_000:
                self.vectors.clear()
                self.ngrams.clear()
            v = cider_vector(self.ngrams[text], self.df, self.log_n, self.logs)
            self.vectors[text] = v
        return v

    def __call__(self, hyp: str, ref: str) -> float:
        return cider_pair(self.vector(words(hyp)), self.vector(words(ref)))


def sequence_reward(
    predicted: Sequence[Event],
    references: Sequence[Event],
    cider: CiderD,
    kind: str = "soda",
) -> float:
    """The reward of one video's predicted events (see the module docstring)."""
    if not predicted or not references:
        return 0.0
    pred = sorted(predicted, key=lambda e: e.start)
    refs = sorted(references, key=lambda e: e.start)
    pred_spans = np.array([[e.start, e.end] for e in pred], dtype=np.float64)
    ref_spans = np.array([[e.start, e.end] for e in refs], dtype=np.float64)
    if kind == "soda":
        video = sd.SodaVideo(
            pred_spans,
            tuple(e.text for e in pred),
            ref_spans,
            tuple(e.text for e in refs),
        )
        # video_prf scores (reference sentence, predicted sentence): the prediction
        # is CIDEr's hypothesis here
        return sd.video_prf(video, lambda ref, hyp: cider(hyp, ref))[2]
    if kind == "f1":
        iou = dv.tiou_matrix(pred_spans, ref_spans)  # (P, G)
        f1s = []
        for t in dv.TIOUS:
            hit = iou > t
            p = hit.any(axis=1).mean()
            r = hit.any(axis=0).mean()
            f1s.append(2 * p * r / (p + r) if p + r > 0 else 0.0)
        nearest = iou.argmax(axis=1)
        caption = [
            cider(e.text, refs[j].text) if iou[i, j] > 0 else 0.0
            for i, (e, j) in enumerate(zip(pred, nearest.tolist(), strict=True))
        ]
        return float(np.mean(f1s)) * (1.0 + float(np.mean(caption)))
    raise ValueError(f"unknown reward {kind!r}; choose from {REWARDS}")

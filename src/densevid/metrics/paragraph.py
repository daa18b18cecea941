"""Paragraph evaluation: a video's captions as one paragraph, scored against the
reference paragraphs (the ActivityNet paragraph-captioning protocol of "Move Forward
and Tell" and "Adversarial Inference for Multi-Sentence Video Description").

Facts of the reference implementation (PDVC's ``densevid_eval3/para_evaluate.py``,
kept here): a prediction paragraph is every sentence followed by ". "; both sides
keep only ASCII letters (everything else becomes a space), lowercased, with no PTB
tokenizer; every reference video is scored, one without predictions as the empty
paragraph; each video's references are the paragraphs of the reference files that
hold it; BLEU-1..4 and CIDEr-D are coco-caption's corpus scorers with several
references, METEOR the corpus aggregate of the best reference per video, ROUGE-L
the mean over videos of the best precision and best recall. The reference joins a
video's sentences in file order; here they are sorted by start time first (stable),
which is the same for files written in time order, as densevid's are.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from densevid.errors import DensevidError
from densevid.events import VideoEvents, load_annotations, read_json
from densevid.metrics.backend import check_backend
from densevid.metrics.scorers import lcs_length, rouge_f

PARAGRAPH_METRICS = (
    "Bleu_1",
    "Bleu_2",
    "Bleu_3",
    "Bleu_4",
    "METEOR",
    "ROUGE_L",
    "CIDEr",
)
NOT_LETTERS = re.compile("[^a-zA-Z]")


def paragraph_words(text: str) -> str:
    """The reference implementation's text: ASCII letters only, lowercased."""
    return " ".join(NOT_LETTERS.sub(" ", text).lower().split())


def paragraph_of(video: VideoEvents) -> str:
    """A video's captions in time order as one paragraph, each followed by ". "."""
    events = sorted(video.events, key=lambda e: e.start)
    return "".join(e.text + ". " for e in events)


def load_paragraph_references(path: str | Path) -> dict[str, str]:
    """Reference paragraphs: ``{video_id: paragraph}`` (the ``*_para.json`` files of
    ActivityNet Entities and PDVC) or any annotation file densevid reads, its
    sentences joined in time order."""
    data = read_json(path)
    if (
        isinstance(data, dict)
        and data
        and all(isinstance(v, str) for v in data.values())
    ):
        return dict(data)
    return {vid: paragraph_of(v) for vid, v in load_annotations(path).items()}


def evaluate_paragraphs(
    predictions: Mapping[str, VideoEvents],
    references: Sequence[Mapping[str, str]],
    *,
    metrics: Iterable[str] | None = None,
    meteor=None,
    backend: str | None = None,
    strict: bool = False,
    source: str | None = None,
) -> dict[str, float]:
    """Paragraph scores of dense-captioning predictions.

    Args:
        predictions: video id -> events; ids are matched to the references as
            ``densevid eval`` matches them (``match_submission``).
        references: reference sets, each video id -> paragraph
            (``load_paragraph_references``).
        metrics: names among ``PARAGRAPH_METRICS`` (default all).
        meteor: a METEOR scorer (``stats``/``sentence_scores``/``corpus_scores``);
            default the shared one of ``backend``.
        backend: "python" (default) or "java", as ``evaluate``'s.
        strict, source: as ``evaluate``'s.

    Returns:
        Metric name -> value (fractions), under the reference's names.
    """
    from densevid.metrics.scorers import shared_meteor
    from densevid.metrics.submission import match_submission

    backend = check_backend(backend)
    wanted = set(metrics or PARAGRAPH_METRICS)
    unknown = wanted - set(PARAGRAPH_METRICS)
    if unknown:
        raise DensevidError(
            f"unknown paragraph metric(s) {sorted(unknown)}; choose from "
            + ", ".join(PARAGRAPH_METRICS)
        )
    if any(m.startswith("Bleu") for m in wanted):
        wanted |= {m for m in PARAGRAPH_METRICS if m.startswith("Bleu")}
    if not references:
        raise DensevidError("no reference file given")
    ids = list(dict.fromkeys(vid for r in references for vid in r))
    stand_ins = [{vid: VideoEvents(vid) for vid in r} for r in references]
    matched = match_submission(predictions, stand_ins, strict=strict, source=source)
    hyps = [
        paragraph_words(paragraph_of(matched[v])) if v in matched else "" for v in ids
    ]
    refs = [[paragraph_words(r[v]) for r in references if v in r] for v in ids]
    scores: dict[str, float] = {}
    if "Bleu_1" in wanted or "CIDEr" in wanted:
        scores.update(_coco_scores(hyps, refs, wanted))
    if "ROUGE_L" in wanted:
        scores["ROUGE_L"] = float(
            np.mean([_rouge_l(h, rs) for h, rs in zip(hyps, refs, strict=True)])
        )
    if "METEOR" in wanted:
        scores["METEOR"] = _meteor(hyps, refs, meteor or shared_meteor(backend=backend))
    return {m: scores[m] for m in PARAGRAPH_METRICS if m in scores}


def _coco_scores(hyps: list[str], refs: list[list[str]], wanted: set[str]) -> dict:
    """coco-caption's own BLEU and CIDEr-D with several references per video (exact
    by construction; the paragraph job is small)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    gts = {i: rs for i, rs in enumerate(refs)}
    res = {i: [h] for i, h in enumerate(hyps)}
    out: dict[str, float] = {}
    with contextlib.redirect_stdout(io.StringIO()):  # BleuScorer prints its stats
        if "Bleu_1" in wanted:
            bleu, _ = Bleu(4).compute_score(gts, res)
            out.update({f"Bleu_{n + 1}": float(b) for n, b in enumerate(bleu)})
        if "CIDEr" in wanted:
            out["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    return out


def _rouge_l(hyp: str, refs: list[str]) -> float:
    """coco-caption's ROUGE-L with several references: the best precision and the
    best recall, each over all references, combined with beta 1.2."""
    c = hyp.split(" ")
    prec = rec = 0.0
    for ref in refs:
        r = ref.split(" ")
        lcs = lcs_length(r, c)
        prec = max(prec, lcs / float(len(c)))
        rec = max(rec, lcs / float(len(r)))
    return rouge_f(prec, rec)


def _meteor(hyps: list[str], refs: list[list[str]], meteor) -> float:
    """METEOR 1.5 of several references as the jar scores them: the statistics of
    the first reference with the highest sentence score, then one corpus
    aggregate over the videos."""
    pairs = [(h, r) for h, rs in zip(hyps, refs, strict=True) for r in rs]
    stats = meteor.stats(pairs)
    sentence = meteor.sentence_scores(stats)
    chosen, k = [], 0
    for rs in refs:
        best = max(range(len(rs)), key=lambda j: (sentence[k + j], -j))
        chosen.append(stats[k + best])
        k += len(rs)
    return float(meteor.corpus_scores([chosen])[0])

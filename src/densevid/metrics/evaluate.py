"""``evaluate``: every metric of the field for one set of predictions, exactly as the
official tools compute them, in one pass.

Work is shared across metrics, tIoUs and reference files: each distinct sentence is
tokenised once, each distinct METEOR pair is scored once (while the Python metrics
run), and each distinct set of a video's pairs is aggregated once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from densevid.errors import DensevidError, plural
from densevid.events import VideoEvents, load_submission
from densevid.metrics import densevid as dv
from densevid.metrics import soda as sd
from densevid.metrics.backend import check_backend, shared_tokenizer
from densevid.metrics.scorers import (
    Meteor,
    NgramCache,
    bleu_corpus,
    bleu_pair_stats,
    cider_d,
    rouge_l,
    shared_meteor,
)
from densevid.metrics.submission import load_references, match_submission
from densevid.metrics.tokenize import PTBTokenizer

logger = logging.getLogger(__name__)

BLEU = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4")
CAPTION_METRICS = (*BLEU, "METEOR", "ROUGE_L", "CIDEr")
PROPOSAL_METRICS = ("Recall", "Precision", "F1")
METRICS = (*CAPTION_METRICS, *PROPOSAL_METRICS, "SODA_c")
F1_DEFINITIONS = ("tiou", "average", "video")


def needs_text(metrics: Iterable[str]) -> bool:
    """Whether these metrics read the captions: the caption metrics and SODA_c
    (tokenised with the PTB tokenizer); Recall, Precision and F1 do not.
    Per-tIoU names ("METEOR@0.5") count as their metric."""
    return bool({m.split("@")[0] for m in metrics} & {*CAPTION_METRICS, "SODA_c"})


def evaluate(
    predictions: Mapping[str, VideoEvents],
    references: Mapping[str, VideoEvents] | Sequence[Mapping[str, VideoEvents]],
    *,
    tious: Sequence[float] = dv.TIOUS,
    max_proposals: int | None = dv.MAX_PROPOSALS,
    metrics: Iterable[str] | None = None,
    garbage: str = "random",
    soda: bool = True,
    soda_references: str = "separate",
    f1: str = "tiou",
    skip_missing: bool | None = None,
    meteor: Meteor | None = None,
    tokenizer: PTBTokenizer | None = None,
    n_workers: int | None = None,
    backend: str | None = None,
    strict: bool = False,
    source: str | None = None,
    verbose: bool = False,
) -> dict[str, float]:
    """Scores dense-captioning predictions against one or more reference sets.

    Args:
        predictions: video id -> predicted events (file order matters: only the
            first ``max_proposals`` count). Ids that differ from the references'
            only by a file extension or the ``v_`` prefix are matched when
            unambiguous; videos not in the references are ignored, as the
            official scorer does (``densevid.metrics.submission``).
        references: one reference set or several (e.g. val_1 and val_2), each
            video id -> reference events.
        tious: tIoU thresholds of the caption and proposal metrics.
        max_proposals: predictions kept per video, in order (None: all).
        metrics: names to compute (default all of ``METRICS``); e.g.
            ``("METEOR", "CIDEr", "SODA_c")`` during training. Any Bleu_n gives all
            four.
        garbage: what unmatched predictions are compared with: "random" (the
            official script since 2019; a fixed nonsense token with the same
            numbers) or "2018" (``abc123!@#``; PDVC's default "2018" numbers).
        soda: compute SODA_c (when ``metrics`` allows it).
        soda_references: "separate" (PDVC: each reference set alone, averaged),
            "merged" (SODA's CLI default) or "best" (SODA ``--multi_reference``).
        f1: F1 definition (the official script has none): "tiou" (VidChapters),
            "average" or "video" (scenic Vid2Seq); see ``f1_scores``.
        skip_missing: reference videos without predictions: None follows each
            tool (densevid_eval counts them as 0, SODA skips them), True skips
            them everywhere (VidChapters), False counts them as 0 everywhere.
        meteor: the METEOR scorer to use; by default the backend's process-wide
            one (``shared_meteor()``: started once, kept until exit).
        tokenizer: the PTB tokenizer to use; by default the backend's
            process-wide one (its cache makes repeated references free).
        n_workers: METEOR processes, when the shared Java one is started here.
        backend: "python" (default: METEOR 1.5 and the PTB tokenizer
            re-implemented, no Java) or "java" (the jars pycocoevalcap ships, for
            cross-checking); the numbers are the same.
        strict: refuse loosely matched or unknown video ids and events past a
            video's duration (a DensevidError) instead of one warning per kind.
        source: the predictions' name in warnings (``evaluate_files``: the path).
        verbose: progress bars over the videos and a line per stage (a file of
            millions of events takes minutes).

    Returns:
        Metric name -> value (fractions): the tIoU averages under the official
        names ("Bleu_4", "METEOR", "CIDEr", "Recall", ...), per-tIoU values as
        "METEOR@0.5", and "SODA_c".
    """
    backend = check_backend(backend)
    refs = [references] if isinstance(references, Mapping) else list(references)
    wanted = _check_options(metrics, soda, garbage, soda_references, f1, tious, refs)
    preds = _match_predictions(predictions, refs, max_proposals, strict, source)
    need_meteor = bool({"METEOR", "SODA_c"} & wanted)
    need_text = needs_text(wanted)
    if need_meteor and meteor is None:
        meteor = shared_meteor(n_workers, backend)  # loads while tokenising
    tokens: dict[str, str] = {}
    if need_text:
        texts = [e.text for v in preds.values() for e in v.events]
        texts += [e.text for r in refs for v in r.values() for e in v.events]
        texts.append(dv.GARBAGE[garbage])
        logger.info("eval: tokenising %s", plural(len(texts), "sentence"))
        tokens = (tokenizer or shared_tokenizer(backend))(texts)
    return _evaluate(
        preds, refs, tokens, wanted, tuple(tious), garbage, soda_references, f1,
        skip_missing, meteor if need_meteor else None, verbose,
    )  # fmt: skip


def evaluate_files(
    submission: str | Path,
    references: Sequence[str | Path],
    *,
    max_proposals: int | None = dv.MAX_PROPOSALS,
    strict: bool = False,
    **kwargs,
) -> dict[str, float]:
    """``evaluate`` on files: a submission (official or bare results dict) and
    ActivityNet-format reference files.

    The submission is read as the official scorer reads it, oddities kept and
    reported once per kind (``densevid.events.load_submission``); ``strict``
    refuses them."""
    if not references:
        raise DensevidError("no reference file given")
    wanted = set(kwargs.get("metrics") or METRICS)
    if kwargs.get("soda") is False:
        wanted.discard("SODA_c")
    if kwargs.get("meteor") is None and wanted & {"METEOR", "SODA_c"}:
        # starts loading while the files load
        shared_meteor(kwargs.get("n_workers"), kwargs.get("backend"))
    refs = load_references(references)
    preds = load_submission(submission, max_per_video=max_proposals, strict=strict)
    return evaluate(
        preds,
        refs,
        max_proposals=max_proposals,
        strict=strict,
        source=str(submission),
        **kwargs,
    )


def _check_options(
    metrics: Iterable[str] | None,
    soda: bool,
    garbage: str,
    soda_references: str,
    f1: str,
    tious: Sequence[float],
    refs: list,
) -> set[str]:
    if metrics is None:
        wanted = set(METRICS)
    else:
        wanted = set(metrics)
        unknown = wanted - set(METRICS)
        if unknown:
            raise DensevidError(
                f"unknown metric(s) {sorted(unknown)}; choose from {', '.join(METRICS)}"
            )
    if wanted & set(BLEU):
        wanted |= set(BLEU)
    if not soda:
        wanted.discard("SODA_c")
    if garbage not in dv.GARBAGE:
        raise DensevidError(f"garbage must be 'random' or '2018', got {garbage!r}")
    if soda_references not in sd.SODA_REFERENCES:
        raise DensevidError(
            f"soda_references must be one of {sd.SODA_REFERENCES}, "
            f"got {soda_references!r}"
        )
    if f1 not in F1_DEFINITIONS:
        raise DensevidError(f"f1 must be one of {F1_DEFINITIONS}, got {f1!r}")
    if not tious or any(not 0 <= t <= 1 for t in tious):
        raise DensevidError(f"tIoU thresholds must be in [0, 1], got {list(tious)}")
    if not refs:
        raise DensevidError("no reference set given")
    return wanted


def _match_predictions(
    predictions: Mapping[str, VideoEvents],
    refs: list[Mapping[str, VideoEvents]],
    max_proposals: int | None,
    strict: bool,
    source: str | None,
) -> dict[str, VideoEvents]:
    """Predictions truncated in file order, then keyed by reference ids (unmatched
    ids dropped), so that findings count only the events that are scored."""
    if max_proposals is not None:
        predictions = {
            k: VideoEvents(v.video_id, v.events[:max_proposals], v.duration)
            for k, v in predictions.items()
        }
    preds = match_submission(predictions, refs, strict=strict, source=source)
    n_refs = len(dv.reference_ids(refs))
    if preds and len(preds) < n_refs:  # the usual cause of low numbers (BMT#17)
        logger.info(
            "reference videos without a prediction: %d of %d (densevid_eval "
            "counts them as 0)",
            n_refs - len(preds),
            n_refs,
        )
    return preds


CHUNK_EVENTS = 20_000  # predicted events scored at once: bounds the pairs held
MAX_CACHED_SENTENCES = 200_000  # n-gram tables kept across chunks


def _evaluate(
    preds: dict[str, VideoEvents],
    refs: list[Mapping[str, VideoEvents]],
    tokens: dict[str, str],
    wanted: set[str],
    tious: tuple[float, ...],
    garbage: str,
    soda_references: str,
    f1: str,
    skip_missing: bool | None,
    meteor: Meteor | None,
    verbose: bool = False,
) -> dict[str, float]:
    """Scores the videos a chunk at a time (``CHUNK_EVENTS``): a pair is shared
    only within a video, so nothing is lost by forgetting a chunk's pairs, and the
    memory stays flat however many events a submission holds."""
    gt_ids = dv.reference_ids(refs)
    caption_ids = [v for v in gt_ids if v in preds] if skip_missing else gt_ids
    soda_refs = []
    if "SODA_c" in wanted and meteor is not None:
        soda_refs = [refs] if soda_references == "merged" else [[r] for r in refs]
    job = _Job(
        preds=preds,
        refs=refs,
        tokens=tokens,
        wanted=wanted,
        tious=tious,
        garbage_tok=tokens.get(dv.GARBAGE[garbage], ""),
        meteor=meteor,
        rows={vid: i for i, vid in enumerate(caption_ids)},
        soda_refs=soda_refs,
    )
    progress = tqdm(total=len(gt_ids), desc="eval", unit="video", disable=not verbose)
    with progress:
        for chunk in _chunks(gt_ids, preds, CHUNK_EVENTS):
            job.score(chunk)
            progress.update(len(chunk))
            if len(job.ngrams) > MAX_CACHED_SENTENCES:
                job.ngrams.clear()

    scores: dict[str, float] = {}
    table = job.per_video
    if "Recall" in wanted:
        _put(scores, "Recall", _video_mean(table["Recall"]), tious)
    if "Precision" in wanted:
        _put(scores, "Precision", _video_mean(table["Precision"]), tious)
    if "F1" in wanted:
        per_tiou, value = dv.f1_scores(table["Precision"], table["Recall"], f1)
        if per_tiou:
            for t, x in zip(tious, per_tiou, strict=True):
                scores[f"F1@{t:g}"] = x
        scores["F1"] = value
    names = [*BLEU] if "Bleu_1" in wanted else []
    names += [m for m in ("METEOR", "ROUGE_L", "CIDEr") if m in wanted]
    if "METEOR" in names and meteor is None:
        names.remove("METEOR")
    for m in names:
        _put(scores, m, _video_mean(table[m]), tious)
    if job.soda_refs:
        scores["SODA_c"] = _soda_c(job.soda_prf, refs, soda_references, skip_missing)
    return {k: float(v) for k, v in scores.items()}


def _chunks(ids: list[str], preds: Mapping[str, VideoEvents], limit: int):
    """Consecutive runs of ids holding about ``limit`` predicted events each."""
    chunk: list[str] = []
    n = 0
    for vid in ids:
        chunk.append(vid)
        pv = preds.get(vid)
        n += len(pv.events) if pv is not None else 0
        if n >= limit:
            yield chunk
            chunk, n = [], 0
    if chunk:
        yield chunk


@dataclass
class _Job:
    """One evaluation's inputs and per-video results, filled a chunk at a time.

    ``rows``: caption video id -> its row in ``per_video``'s (videos, tIoUs)
    tables; ``soda_refs``: the reference sets SODA_c scores against (none: no
    SODA_c), ``soda_prf`` their per-video (P, R, F)."""

    preds: dict[str, VideoEvents]
    refs: list[Mapping[str, VideoEvents]]
    tokens: dict[str, str]
    wanted: set[str]
    tious: tuple[float, ...]
    garbage_tok: str
    meteor: Meteor | None
    rows: dict[str, int]
    soda_refs: list[list[Mapping[str, VideoEvents]]]
    per_video: dict[str, np.ndarray] = field(init=False)
    soda_prf: list[dict[str, tuple[float, float, float]]] = field(init=False)
    ngrams: NgramCache = field(init=False, default_factory=NgramCache)

    def __post_init__(self) -> None:
        shape = (len(self.rows), len(self.tious))
        names = (*BLEU, "METEOR", "ROUGE_L", "CIDEr", "Precision", "Recall")
        self.per_video = {m: np.zeros(shape) for m in names}
        self.soda_prf = [{} for _ in self.soda_refs]

    def score(self, chunk: list[str]) -> None:
        wanted = self.wanted
        video_pairs: dict[str, list[list[tuple[str, str]]]] = {}
        want_captions = bool(set(CAPTION_METRICS) & wanted)
        for vid in chunk:
            row = self.rows.get(vid)
            pv = self.preds.get(vid)
            if row is None or pv is None or not pv.events:
                continue
            spans = dv.spans_of(pv)
            vrefs = [_reference(r[vid], self.tokens) for r in self.refs if vid in r]
            if want_captions:
                texts = tuple(self.tokens[e.text] for e in pv.events)
                pred = dv.Prediction(spans, texts)
                video_pairs[vid] = dv.caption_pairs(
                    pred, vrefs, self.tious, self.garbage_tok
                )
            texts = tuple(e.text for e in pv.events)
            prec, rec = dv.proposal_scores(
                dv.Prediction(spans, texts), vrefs, self.tious
            )
            self.per_video["Precision"][row] = prec
            self.per_video["Recall"][row] = rec
        soda_sets = []
        if self.soda_refs:
            chunk_preds = {v: self.preds[v] for v in chunk if v in self.preds}
            for s in self.soda_refs:
                part = [{v: r[v] for v in chunk if v in r} for r in s]
                soda_sets.append(sd.soda_videos(chunk_preds, part, self.tokens))
        soda_pairs = [
            p for s in soda_sets for v in s.values() for p in sd.scored_pairs(v)
        ]

        # METEOR statistics of the distinct pairs, in the background (the Java
        # backend's processes work while the n-gram metrics run here).
        meteor_stats: dict[tuple[str, str], str] = {}
        meteor_error: list[BaseException] = []
        meteor_thread = None
        meteor = self.meteor
        if meteor is not None and ("METEOR" in wanted or soda_pairs):
            todo = soda_pairs
            if "METEOR" in wanted:
                todo = [p for per in video_pairs.values() for ps in per for p in ps]
                todo += soda_pairs
            todo = list(dict.fromkeys(todo))

            def run_meteor() -> None:
                try:
                    meteor_stats.update(zip(todo, meteor.stats(todo), strict=True))
                except BaseException as e:
                    meteor_error.append(e)

            meteor_thread = threading.Thread(target=run_meteor, daemon=True)
            meteor_thread.start()
        try:
            self._ngram_scores(video_pairs)
        finally:
            if meteor_thread is not None:
                meteor_thread.join()
        if meteor_error:
            raise meteor_error[0]
        if meteor is None:
            return
        if "METEOR" in wanted:
            groups: dict[tuple[str, ...], int] = {}
            where = []
            for vid, per in video_pairs.items():
                for ti, pairs in enumerate(per):
                    key = tuple(sorted(meteor_stats[p] for p in pairs))
                    where.append(
                        (self.rows[vid], ti, groups.setdefault(key, len(groups)))
                    )
            values = meteor.corpus_scores(list(groups))
            for row, ti, gi in where:
                self.per_video["METEOR"][row, ti] = values[gi]
        if soda_sets:
            distinct = list(dict.fromkeys(meteor_stats[p] for p in soda_pairs))
            sentence = dict(
                zip(distinct, meteor.sentence_scores(distinct), strict=True)
            )

            def sentence_meteor(hyp: str, ref: str) -> float:
                return sentence[meteor_stats[(hyp, ref)]]

            for k, s in enumerate(soda_sets):
                for vid, v in s.items():
                    self.soda_prf[k][vid] = sd.video_prf(v, sentence_meteor)

    def _ngram_scores(self, video_pairs: dict[str, list[list[tuple[str, str]]]]):
        """BLEU, ROUGE-L and CIDEr-D per video and tIoU (a pair list shared by
        several tIoUs is scored once)."""
        metrics = [m for m in ("Bleu_1", "ROUGE_L", "CIDEr") if m in self.wanted]
        if not metrics:
            return
        bleu_stats: dict[tuple[str, str], tuple] = {}
        rouge: dict[tuple[str, str], float] = {}
        memo: dict[tuple, tuple] = {}
        for vid, per in video_pairs.items():
            row = self.rows[vid]
            for ti, pairs in enumerate(per):
                key = tuple(pairs)
                got = memo.get(key)
                if got is None:
                    got = memo[key] = _ngram_metrics(
                        pairs, metrics, self.ngrams, bleu_stats, rouge
                    )
                for m, x in got:
                    self.per_video[m][row, ti] = x


def _reference(video: VideoEvents, tokens: dict[str, str]) -> dv.Reference:
    texts = tuple(tokens.get(e.text, "") for e in video.events)
    return dv.Reference(dv.spans_of(video), texts)


def _ngram_metrics(
    pairs: list[tuple[str, str]],
    wanted: list[str],
    ngrams: NgramCache,
    bleu_stats: dict,
    rouge: dict,
) -> tuple[tuple[str, float], ...]:
    out: list[tuple[str, float]] = []
    if "Bleu_1" in wanted:
        stats = []
        for p in pairs:
            s = bleu_stats.get(p)
            if s is None:
                s = bleu_stats[p] = bleu_pair_stats(p[0], p[1], ngrams)
            stats.append(s)
        out.extend(zip(BLEU, bleu_corpus(stats), strict=True))
    if "ROUGE_L" in wanted:
        values = []
        for p in pairs:
            r = rouge.get(p)
            if r is None:
                r = rouge[p] = rouge_l(p[0], p[1], ngrams)
            values.append(r)
        out.append(("ROUGE_L", float(np.mean(np.array(values)))))
    if "CIDEr" in wanted:
        out.append(("CIDEr", cider_d(pairs, ngrams)))
    return tuple(out)


def _soda_c(
    per_set: list[dict[str, tuple[float, float, float]]],
    refs: list[Mapping[str, VideoEvents]],
    how: str,
    skip_missing: bool | None,
) -> float:
    """SODA_c from each reference set's per-video (P, R, F)."""
    if how == "best":
        ids = dv.reference_ids(refs)
        f = []
        for vid in ids:
            cands = [s[vid] for s in per_set if vid in s]
            if cands:
                f.append(cands[int(np.argmax([c[2] for c in cands]))][2])
            elif skip_missing is False:
                f.append(0.0)
        return _mean(f)
    values = []
    sets = [refs] if how == "merged" else [[r] for r in refs]
    for s, ref_set in zip(per_set, sets, strict=True):
        f = [prf[2] for prf in s.values()]
        if skip_missing is False:  # count reference videos without predictions
            f += [0.0] * len(set(dv.reference_ids(ref_set)) - set(s))
        values.append(_mean(f))
    return float(np.mean(values))


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def _video_mean(per_video: np.ndarray) -> list[float]:
    """(V, T) -> mean over videos per tIoU (0 when there is no video)."""
    if per_video.shape[0] == 0:
        return [0.0] * per_video.shape[1]
    return [float(np.mean(per_video[:, t])) for t in range(per_video.shape[1])]


def _put(scores: dict[str, float], name: str, per_tiou: list[float], tious) -> None:
    for t, x in zip(tious, per_tiou, strict=True):
        scores[f"{name}@{t:g}"] = x
    scores[name] = float(np.mean(per_tiou))


def format_scores(scores: Mapping[str, float], tious: Sequence[float]) -> str:
    """A terminal table of ``evaluate``'s result: metrics x100 per tIoU and mean."""
    names = [m for m in METRICS if m in scores]
    head = [f"tIoU {t:g}" for t in tious] + ["mean"]
    width = max(10, *(len(h) for h in head))
    lines = [f"{'metric (x100)':<14}" + "".join(f"{h:>{width + 2}}" for h in head)]
    for name in names:
        cells = []
        for t in tious:
            x = scores.get(f"{name}@{t:g}")
            cells.append("" if x is None else f"{100 * x:.4f}")
        cells.append(f"{100 * scores[name]:.4f}")
        lines.append(f"{name:<14}" + "".join(f"{c:>{width + 2}}" for c in cells))
    return "\n".join(lines)

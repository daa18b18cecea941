"""Which predictions the scorer sees: video ids matched to the references, and the
oddities only the references reveal (unknown ids, events past a video's end).

The official script (densevid_eval ``evaluate.py``) scores the predictions of every
reference video and ignores the rest; it never reads a duration, so an event past
the video's end is scored as it falls. Both are kept here and reported once per kind
(``densevid.events.Findings``), so that ``densevid check -r`` and ``densevid eval``
say the same thing; ``strict`` refuses them instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from densevid.errors import DensevidError
from densevid.events import (
    DURATION_TOLERANCE_S,
    Findings,
    VideoEvents,
    load_annotations,
    resolve_video_ids,
)
from densevid.metrics.densevid import reference_ids


def load_references(paths: Sequence[str | Path]) -> list[dict[str, VideoEvents]]:
    """Reads reference annotation files as ``densevid eval`` does: the released
    files' known blemishes (a few reversed or zero-length segments, ends a little
    past the duration) are repaired without a warning, since users cannot fix
    them."""
    if not paths:
        raise DensevidError("no reference file given")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [load_annotations(p) for p in paths]


def match_submission(
    predictions: Mapping[str, VideoEvents],
    references: Mapping[str, VideoEvents] | Sequence[Mapping[str, VideoEvents]],
    *,
    strict: bool = False,
    source: str | None = None,
) -> dict[str, VideoEvents]:
    """The predictions keyed by the reference ids they are scored as.

    Ids are matched exactly, or loosely when unambiguous (a file extension or the
    ``v_`` prefix apart; ``densevid.events.resolve_video_ids``). Predicted videos
    that match no reference video are dropped, as the official scorer ignores
    them. Each kind of finding is one ``SubmissionWarning``: loosely matched ids,
    ambiguous ids, unknown videos (all of them: every score is 0) and events ending
    past the video's duration (beyond ``DURATION_TOLERANCE_S``; scored as given).

    Args:
        predictions: predicted video id (as written) -> events.
        references: one reference set or several, video id -> reference events.
        strict: raise one DensevidError naming every kind instead of warning.
        source: the predictions' name in messages (e.g. the file path).

    Returns:
        reference video id -> that video's predicted events, unchanged.
    """
    refs = [references] if isinstance(references, Mapping) else list(references)
    ref_ids = reference_ids(refs)
    if not ref_ids:
        raise DensevidError("the references hold no video")
    mapping, ambiguous = resolve_video_ids(predictions, ref_ids)
    findings = Findings(source)
    loose = [f"{p!r} -> {r!r}" for p, r in mapping.items() if p != r]
    for example in loose:
        findings.add("loose_id", detail=example)
    for pid in ambiguous:
        findings.add("ambiguous_id", detail=repr(pid))
    unknown = [p for p in predictions if p not in mapping and p not in ambiguous]
    if unknown and not mapping and not ambiguous:
        example = f"e.g. {unknown[0]!r}; the references have e.g. {ref_ids[0]!r}"
        findings.add("no_match", n=len(unknown), detail=example)
    elif unknown:
        findings.add("unknown_id", n=len(unknown), detail=f"e.g. {unknown[0]!r}")
    out: dict[str, VideoEvents] = {}
    for pid, rid in mapping.items():
        video = predictions[pid]
        durations = [r[rid].duration for r in refs if rid in r]
        known = [d for d in durations if d is not None]
        if known:
            limit = max(known) + DURATION_TOLERANCE_S
            for i, e in enumerate(video.events):
                if max(e.start, e.end) > limit:
                    findings.add(
                        "past_end",
                        f"video {pid}, event {i} ends at {max(e.start, e.end):g} "
                        f"(duration {max(known):g})",
                    )
        out[rid] = VideoEvents(rid, video.events, video.duration)
    findings.report(strict=strict)
    return out

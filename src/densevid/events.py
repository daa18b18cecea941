"""Events, per-video event lists, and the field's JSON files.

Two formats matter (ActivityNet Captions, used by every dense-captioning toolkit):

- annotations: ``{video_id: {"duration": s, "timestamps": [[s, e], ...],
  "sentences": [...]}}``
- submissions: ``{"version": str, "results": {video_id: [{"sentence": str,
  "timestamp": [s, e], "score"?: float}]}, "external_data": {...}}``

Loading is strict about what would silently give wrong numbers (non-numeric, NaN or
negative times, reversed predictions) and lenient about the known blemishes of the
released annotation files (a few reversed or zero-length segments, ends a little past
the duration), which are counted and reported with one warning per file.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from densevid.errors import DensevidError
from densevid.files import VIDEO_EXTENSIONS

logger = logging.getLogger(__name__)

SUBMISSION_VERSION = "VERSION 1.0"
# Ends this far past the duration are rounding in the released files, not errors.
DURATION_TOLERANCE_S = 0.05


@dataclass(frozen=True)
class Event:
    """One event: a segment in seconds and its caption.

    ``score`` is the model's confidence (higher is better) or None when unknown.
    """

    start: float
    end: float
    text: str
    score: float | None = None

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise DensevidError(f"event {name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise DensevidError(f"event {name} must be finite, got {value!r}")
        if self.start < 0:
            raise DensevidError(f"event start must be >= 0, got {self.start}")
        if self.end < self.start:
            raise DensevidError(
                f"event ends before it starts: [{self.start}, {self.end}]"
            )
        if not isinstance(self.text, str):
            raise DensevidError(f"event text must be a string, got {self.text!r}")
        if self.score is not None and not (
            isinstance(self.score, int | float) and math.isfinite(self.score)
        ):
            raise DensevidError(f"event score must be a finite number: {self.score!r}")

    @property
    def length(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        """The submission entry: ``{"sentence", "timestamp", "score"?}``."""
        out: dict[str, Any] = {
            "sentence": self.text,
            "timestamp": [self.start, self.end],
        }
        if self.score is not None:
            out["score"] = self.score
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Event:
        """Reads a submission entry; accepts ``caption`` for ``sentence`` and
        ``segment`` for ``timestamp``, as several toolkits write them."""
        if not isinstance(d, Mapping):
            raise DensevidError(f"an event must be a JSON object, got {_kind(d)}")
        text = _first_key(d, ("sentence", "caption", "text"), "sentence")
        span = _first_key(d, ("timestamp", "segment", "timestamps"), "timestamp")
        start, end = _parse_span(span)
        score = d.get("score", d.get("proposal_score"))
        if score is not None:
            score = _number(score, "score")
        return cls(start, end, text, score)


@dataclass(frozen=True)
class VideoEvents:
    """The events of one video, in the order they were given.

    ``duration`` is known for annotations and usually unknown (None) for predictions.
    """

    video_id: str
    events: tuple[Event, ...] = ()
    duration: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.events, tuple):
            object.__setattr__(self, "events", tuple(self.events))
        if self.duration is not None:
            d = self.duration
            if isinstance(d, bool) or not isinstance(d, int | float):
                raise DensevidError(
                    f"{self.video_id}: duration must be a number: {d!r}"
                )
            if not math.isfinite(d) or d <= 0:
                raise DensevidError(f"{self.video_id}: duration must be > 0, got {d}")

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self):
        return iter(self.events)

    def sorted(self) -> VideoEvents:
        """A copy with events ordered by (start, end)."""
        order = sorted(self.events, key=lambda e: (e.start, e.end))
        return VideoEvents(self.video_id, tuple(order), self.duration)

    def to_annotation(self) -> dict[str, Any]:
        if self.duration is None:
            raise DensevidError(
                f"{self.video_id}: an annotation needs the video duration"
            )
        return {
            "duration": self.duration,
            "timestamps": [[e.start, e.end] for e in self.events],
            "sentences": [e.text for e in self.events],
        }

    def to_results(self) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self.events]


@dataclass
class LoadReport:
    """What lenient loading repaired or tolerated in one file."""

    path: str
    reversed_swapped: int = 0
    zero_length: int = 0
    past_duration: int = 0
    renamed_ids: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str | None:
        parts = []
        if self.reversed_swapped:
            parts.append(f"{self.reversed_swapped} reversed segments swapped")
        if self.zero_length:
            parts.append(f"{self.zero_length} zero-length segments")
        if self.past_duration:
            parts.append(f"{self.past_duration} ends past the video duration")
        if self.renamed_ids:
            parts.append(
                f"{len(self.renamed_ids)} video ids stripped of a file extension"
            )
        return f"{self.path}: " + ", ".join(parts) if parts else None


def read_json(path: str | os.PathLike) -> Any:
    """Reads a JSON file, turning every failure into one DensevidError."""
    p = Path(path)
    if not p.exists():
        raise DensevidError(f"{p}: no such file")
    if p.is_dir():
        raise DensevidError(f"{p}: is a directory, expected a JSON file")
    try:
        with open(p, encoding="utf-8") as f:
            return json.load(f)
    except UnicodeDecodeError as e:
        raise DensevidError(f"{p}: not a UTF-8 text file ({e.reason})") from e
    except json.JSONDecodeError as e:
        raise DensevidError(
            f"{p}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
        ) from e
    except OSError as e:
        raise DensevidError(f"{p}: cannot read ({e.strerror})") from e


def write_json_atomic(
    obj: Any, path: str | os.PathLike, *, indent: int | None = None
) -> Path:
    """Writes JSON atomically, so readers never see half a file."""
    from densevid.atomic import write_text_atomic

    return write_text_atomic(json.dumps(obj, indent=indent, ensure_ascii=False), path)


def strip_video_extension(video_id: str) -> str:
    """'v_abc.mp4' -> 'v_abc' (some tools leave the extension on ids); ids without a
    known video extension are unchanged."""
    lower = video_id.lower()
    for ext in VIDEO_EXTENSIONS:
        if lower.endswith(ext):
            return video_id[: -len(ext)]
    return video_id


def load_annotations(
    path: str | os.PathLike, *, strict: bool = False
) -> dict[str, VideoEvents]:
    """Reads an ActivityNet-format annotation file.

    Args:
        path: the JSON file.
        strict: raise on reversed segments and ends past the duration instead of
            repairing (reversed: swapped) or tolerating (past the end: kept) them.

    Returns:
        video id -> VideoEvents, in file order, events in file order.
    """
    data = read_json(path)
    if not isinstance(data, dict):
        raise DensevidError(
            f"{path}: expected an object {{video_id: annotation}}, got {_kind(data)}"
        )
    if "results" in data and "version" in data:
        raise DensevidError(
            f"{path}: this is a submission (has 'results'), not an annotation file"
        )
    report = LoadReport(str(path))
    videos: dict[str, VideoEvents] = {}
    for video_id, ann in data.items():
        where = f"{path}: video {video_id}"
        if not isinstance(ann, dict):
            raise DensevidError(f"{where}: expected an object, got {_kind(ann)}")
        for key in ("duration", "timestamps", "sentences"):
            if key not in ann:
                raise DensevidError(f"{where}: missing key '{key}'")
        duration = _number(ann["duration"], "duration", where)
        if duration <= 0:
            raise DensevidError(f"{where}: duration must be > 0, got {duration}")
        spans, sentences = ann["timestamps"], ann["sentences"]
        if not isinstance(spans, list) or not isinstance(sentences, list):
            raise DensevidError(f"{where}: 'timestamps' and 'sentences' must be lists")
        if len(spans) != len(sentences):
            raise DensevidError(
                f"{where}: {len(spans)} timestamps but {len(sentences)} sentences"
            )
        events = []
        for i, (span, text) in enumerate(zip(spans, sentences, strict=True)):
            at = f"{where}, event {i}"
            start, end = _parse_span(span, at)
            if not isinstance(text, str):
                raise DensevidError(
                    f"{at}: sentence must be a string, got {_kind(text)}"
                )
            if start > end:
                if strict:
                    raise DensevidError(
                        f"{at}: ends before it starts: [{start}, {end}]"
                    )
                start, end = end, start
                report.reversed_swapped += 1
            if start == end:
                report.zero_length += 1
            if end > duration + DURATION_TOLERANCE_S:
                if strict:
                    raise DensevidError(
                        f"{at}: ends at {end}, past the duration {duration}"
                    )
                report.past_duration += 1
            events.append(Event(start, end, text))
        videos[str(video_id)] = VideoEvents(str(video_id), tuple(events), duration)
    _warn(report)
    return videos


def load_submission(
    path: str | os.PathLike, *, max_per_video: int | None = None
) -> dict[str, VideoEvents]:
    """Reads predictions: the official submission, or a bare ``{video_id: [...]}``.

    Video ids ending in a video file extension are stripped of it. Each video's events
    keep file order; ``max_per_video`` keeps the first ones, as the official
    evaluation does.
    """
    data = read_json(path)
    if not isinstance(data, dict):
        raise DensevidError(
            f"{path}: expected an object with 'results', got {_kind(data)}"
        )
    if "results" in data:
        results = data["results"]
        if not isinstance(results, dict):
            raise DensevidError(
                f"{path}: 'results' must be an object {{video_id: [...]}}"
            )
    elif all(isinstance(v, list) for v in data.values()):
        results = data  # the bare dict several toolkits write
    else:
        raise DensevidError(
            f"{path}: not a submission: expected {{'version', 'results', "
            f"'external_data'}} or {{video_id: [events]}}"
        )
    report = LoadReport(str(path))
    videos: dict[str, VideoEvents] = {}
    for raw_id, entries in results.items():
        video_id = strip_video_extension(str(raw_id))
        if video_id != raw_id:
            report.renamed_ids[str(raw_id)] = video_id
        where = f"{path}: video {raw_id}"
        if not isinstance(entries, list):
            raise DensevidError(
                f"{where}: expected a list of events, got {_kind(entries)}"
            )
        if max_per_video is not None:
            entries = entries[:max_per_video]
        events = []
        for i, entry in enumerate(entries):
            try:
                events.append(Event.from_dict(entry))
            except DensevidError as e:
                raise DensevidError(f"{where}, event {i}: {e}") from None
        if video_id in videos:
            events = list(videos[video_id].events) + events
        videos[video_id] = VideoEvents(video_id, tuple(events))
    _warn(report)
    return videos


def save_annotations(videos: Iterable[VideoEvents], path: str | os.PathLike) -> None:
    write_json_atomic({v.video_id: v.to_annotation() for v in videos}, path)


def submission_dict(
    videos: Iterable[VideoEvents],
    *,
    version: str = SUBMISSION_VERSION,
    external_data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The official submission object for these predictions."""
    return {
        "version": version,
        "results": {v.video_id: v.to_results() for v in videos},
        "external_data": dict(external_data or {"used": False, "details": ""}),
    }


def save_submission(
    videos: Iterable[VideoEvents], path: str | os.PathLike, **kwargs: Any
) -> None:
    write_json_atomic(submission_dict(videos, **kwargs), path)


def match_video_ids(
    predicted: Iterable[str], reference: Iterable[str]
) -> dict[str, str]:
    """Maps predicted ids onto reference ids where they differ only by the ``v_``
    prefix ActivityNet puts on YouTube ids (a common mismatch between toolkits).

    Returns predicted id -> reference id for every id that has a match.
    """
    refs = set(reference)
    mapping = {}
    for pid in predicted:
        if pid in refs:
            mapping[pid] = pid
        elif f"v_{pid}" in refs:
            mapping[pid] = f"v_{pid}"
        elif pid.startswith("v_") and pid[2:] in refs:
            mapping[pid] = pid[2:]
    return mapping


def _warn(report: LoadReport) -> None:
    message = report.summary()
    if message:
        warnings.warn(message, stacklevel=3)


def _first_key(d: Mapping[str, Any], keys: tuple[str, ...], name: str) -> Any:
    for key in keys:
        if key in d:
            return d[key]
    raise DensevidError(f"missing key '{name}' (have: {', '.join(map(str, d))})")


def _number(value: Any, name: str, where: str | None = None) -> float:
    prefix = f"{where}: " if where else ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise DensevidError(
                    f"{prefix}{name} must be a number, got {value!r}"
                ) from None
        else:
            raise DensevidError(f"{prefix}{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise DensevidError(f"{prefix}{name} must be finite, got {value!r}")
    return float(value)


def _parse_span(span: Any, where: str | None = None) -> tuple[float, float]:
    prefix = f"{where}: " if where else ""
    if not isinstance(span, list | tuple) or len(span) != 2:
        raise DensevidError(f"{prefix}timestamp must be [start, end], got {span!r}")
    start = _number(span[0], "start", where)
    end = _number(span[1], "end", where)
    if start < 0 or end < 0:
        raise DensevidError(f"{prefix}negative time in [{start}, {end}]")
    return start, end


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string"}.get(
        type(value), type(value).__name__
    )

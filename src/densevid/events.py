"""Events, per-video event lists, and the field's JSON files.

Two formats matter (ActivityNet Captions, used by every dense-captioning toolkit):

- annotations: ``{video_id: {"duration": s, "timestamps": [[s, e], ...],
  "sentences": [...]}}``; the layouts datasets release (YouCook2's official file,
  ViTT's JSON lines) are recognised by their shape and rewritten into this one by
  ``densevid.annotations`` before the same checks
- submissions: ``{"version": str, "results": {video_id: [{"sentence": str,
  "timestamp": [s, e], "score"?: float}]}, "external_data": {...}}``

Loading refuses what no scorer can read (non-numeric or NaN times, a sentence that is
not a string, a timestamp that is not a pair). Annotations are repaired where the
released files have known blemishes (a few reversed or zero-length segments, ends a
little past the duration). Submissions are kept exactly as written, because the
official scorer scores negative, reversed and duplicate events as they fall: each
kind of oddity is counted and reported in one warning (``SubmissionWarning``), or
refused with ``strict=True``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from densevid.annotations import (
    ACTIVITYNET,
    DROPS,
    check_id_mapping,
    convert,
    split_subset,
)
from densevid.errors import DensevidError, plural
from densevid.files import VIDEO_EXTENSIONS

logger = logging.getLogger(__name__)

SUBMISSION_VERSION = "VERSION 1.0"
# Ends this far past the duration are rounding in the released files, not errors.
DURATION_TOLERANCE_S = 0.05
# The field names other toolkits write, read as the official ones (first found wins).
SENTENCE_KEYS = ("sentence", "caption", "text")
TIMESTAMP_KEYS = ("timestamp", "segment", "timestamps")
SUBMISSION_FIELDS = ("results", "version", "external_data")  # the official script's


class SubmissionWarning(UserWarning):
    """A kind of oddity in predictions that is scored as the official scorer scores
    it; issued once per kind and file, with the count (``strict=True`` refuses)."""


class AnnotationWarning(UserWarning):
    """A kind of video or annotation set that reading a released layout leaves
    out (``densevid.annotations.DROPS``), issued once per kind and file with the
    count."""


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

    @classmethod
    def as_given(
        cls, start: float, end: float, text: str, score: float | None = None
    ) -> Event:
        """An event of another system's predictions whose times may be negative or
        reversed, kept as written: the official scorer scores such events as they
        fall (a reversed one has tIoU 0 with every segment), so refusing or
        repairing them would change the numbers. Only ``load_submission`` makes
        them; the times must already be finite numbers and the text a string."""
        event = object.__new__(cls)
        for name, value in zip(
            ("start", "end", "text", "score"), (start, end, text, score), strict=True
        ):
            object.__setattr__(event, name, value)
        return event


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

    def summary(self) -> str | None:
        parts = []
        if self.reversed_swapped:
            parts.append(f"{self.reversed_swapped} reversed segments swapped")
        if self.zero_length:
            parts.append(f"{self.zero_length} zero-length segments")
        if self.past_duration:
            parts.append(f"{self.past_duration} ends past the video duration")
        return f"{self.path}: " + ", ".join(parts) if parts else None


# Each kind of oddity in predictions, in report order: what was found, and what is
# done with it (the warning is both; --strict refuses with the first). {n} is the
# count, {s} a plural ending, {they_fall} "it falls"/"they fall", {detail} examples.
# The official scorer scores every event as written; only the file shapes, field
# names and id spellings are ones it cannot read.
ODDITIES: dict[str, tuple[str, str]] = {
    "no_results": (
        "no 'results' wrapper",
        " (the official scorer needs it): read as a bare {{video_id: [events]}} "
        "mapping",
    ),
    "no_fields": ("no {detail}", " (the official scorer requires them): read anyway"),
    "repeated_key": (
        "{n} key{s} repeated in a JSON object ({detail})",
        " read as the last value, as the official scorer's JSON reader does",
    ),
    "field_names": ("{n} event{s} with {detail}", " read under the official names"),
    "string_times": ("{n} event{s} with times written as strings", " read as numbers"),
    "bad_score": (
        "{n} event{s} with a score that is not a number",
        " kept without it (the official scorer reads no score)",
    ),
    "negative": ("{n} event{s} with a negative time", " scored as given"),
    "reversed": ("{n} event{s} with end < start", " scored as {they_fall} (tIoU 0)"),
    "zero_length": ("{n} zero-length event{s}", " scored as {they_fall} (tIoU 0)"),
    "empty_sentence": ("{n} event{s} with an empty sentence", " scored as given"),
    "duplicate": (
        "{n} duplicate event{s} (times and sentence of an earlier event of the video)",
        " each scored, as the official scorer does",
    ),
    "loose_id": (
        "{n} predicted video id{s} matching a reference id only without a file "
        "extension or with the 'v_' prefix changed ({detail})",
        " scored as that reference video",
    ),
    "ambiguous_id": (
        "{n} predicted video id{s} matching a reference id only loosely, and not "
        "uniquely ({detail})",
        " ignored, as the official scorer ignores unknown ids",
    ),
    "unknown_id": (
        "{n} predicted video{s} not in the references ({detail})",
        " ignored, as the official scorer does",
    ),
    "no_match": (
        "none of the {n} predicted video{s} in the references ({detail})",
        ": every score is 0, as the official scorer gives",
    ),
    "past_end": (
        "{n} event{s} ending past the video's duration",
        " scored as given",
    ),
}
MAX_DETAILS = 3  # examples named in one warning


@dataclass
class Findings:
    """The oddities found in one set of predictions: kind -> count, first place and
    a few examples, reported once per kind (``report``).

    One object collects them so that ``densevid check`` and ``densevid eval`` say
    the same words by the same rules, and ``strict`` refuses exactly what would
    otherwise be a warning. ``table`` and ``category`` let annotation readers count
    what they drop by the same rules (``densevid.annotations.DROPS``).
    """

    source: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    first: dict[str, str] = field(default_factory=dict)
    details: dict[str, list[str]] = field(default_factory=dict)
    table: Mapping[str, tuple[str, str]] = field(default_factory=lambda: ODDITIES)
    category: type[Warning] = SubmissionWarning

    def add(
        self, kind: str, where: str = "", *, n: int = 1, detail: str | None = None
    ) -> None:
        """Counts ``n`` cases of ``kind`` (a key of ``table``) seen at ``where``."""
        assert kind in self.table, kind
        self.counts[kind] = self.counts.get(kind, 0) + n
        if where:
            self.first.setdefault(kind, where)
        seen = self.details.setdefault(kind, [])
        if detail is not None and detail not in seen and len(seen) < MAX_DETAILS:
            seen.append(detail)

    def messages(self, *, strict: bool = False) -> list[str]:
        """One line per kind, in ``table`` order, naming the first case: the
        finding and what is done with it, or with ``strict`` the finding alone."""
        out = []
        for kind, (finding, consequence) in self.table.items():
            n = self.counts.get(kind)
            if not n:
                continue
            words = {
                "n": n,
                "s": "" if n == 1 else "s",
                "they_fall": "it falls" if n == 1 else "they fall",
                "detail": ", ".join(self.details.get(kind, [])),
            }
            text = finding.format(**words)
            if not strict:
                text += consequence.format(**words)
            if kind in self.first:
                where = self.first[kind]
                text += f" (first: {where})" if strict else f"; first: {where}"
            out.append(text)
        return out

    def report(self, *, strict: bool = False) -> None:
        """Warns once per kind (``category``), or with ``strict`` raises one
        DensevidError naming every kind."""
        prefix = f"{self.source}: " if self.source else ""
        if strict and self.counts:
            found = "; ".join(self.messages(strict=True))
            raise DensevidError(f"{prefix}refused by --strict: {found}")
        for line in self.messages():
            warnings.warn(prefix + line, self.category, stacklevel=3)


def read_json(
    path: str | os.PathLike,
    *,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
    lines: bool = False,
) -> Any:
    """Reads a JSON file, turning every failure into one DensevidError
    (``object_pairs_hook`` as ``json.load``'s).

    With ``lines``, a file of several JSON values one per line (JSON lines, as
    ViTT releases its annotations) is read as the list of them.
    """
    p = Path(path)
    if not p.exists():
        raise DensevidError(f"{p}: no such file")
    if p.is_dir():
        raise DensevidError(f"{p}: is a directory, expected a JSON file")
    try:
        with open(p, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise DensevidError(f"{p}: not a UTF-8 text file ({e.reason})") from e
    except OSError as e:
        raise DensevidError(f"{p}: cannot read ({e.strerror})") from e
    try:
        return json.loads(text, object_pairs_hook=object_pairs_hook)
    except json.JSONDecodeError as e:
        if lines and e.msg == "Extra data":
            return _json_lines(p, text, object_pairs_hook)
        raise DensevidError(
            f"{p}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
        ) from e


def _json_lines(
    path: Path,
    text: str,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None,
) -> list[Any]:
    """The values of a JSON-lines file, blank lines skipped. Split on newlines
    only: a JSON string may hold other line separators unescaped."""
    out = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line, object_pairs_hook=object_pairs_hook))
        except json.JSONDecodeError as e:
            raise DensevidError(
                f"{path}: not valid JSON lines (line {number}, column {e.colno}: "
                f"{e.msg})"
            ) from e
    return out


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


@dataclass(frozen=True)
class AnnotationFile:
    """An annotation file as read: its videos, and what ``densevid check`` says
    about it (the layout found, the subset read and the ones the file holds)."""

    path: str
    videos: dict[str, VideoEvents]
    layout: str = ACTIVITYNET
    subset: str | None = None
    subsets: dict[str, int] = field(default_factory=dict)
    about: str = ""

    def describe(self) -> str:
        """``'YouCook2 layout, subset training of: training (3 videos), ...'``."""
        text = f"{self.layout} layout"
        if self.subsets:
            held = ", ".join(
                f"{s} ({plural(n, 'video')})" for s, n in self.subsets.items()
            )
            text += f", subset {self.subset} of: {held}"
        return f"{text}; {self.about}" if self.about else text


def load_annotations(
    path: str | os.PathLike,
    *,
    strict: bool = False,
    subset: str | None = None,
    durations: Mapping[str, float] | None = None,
    id_mapping: Mapping[str, str] | str | os.PathLike | None = None,
) -> dict[str, VideoEvents]:
    """Reads an annotation file: ActivityNet Captions, or a layout a dataset
    releases (YouCook2's ``youcookii_annotations_trainval.json``, ViTT's
    ``ViTT-annotations.json``), recognised by its shape.

    Args:
        path: the file; ``FILE#SUBSET`` names a subset (YouCook2's ``training``,
            ``validation``), so configs and every command can choose one.
        strict: raise on reversed segments and ends past the duration instead of
            repairing (reversed: swapped) or tolerating (past the end: kept) them.
        subset: the subset to read, as the ``#SUBSET`` suffix does. A file
            holding several must be given one.
        durations: video id -> seconds, for layouts without durations (ViTT gives
            chapter starts only; ``densevid.annotations.video_durations`` reads
            them from the videos or their features). Ignored by the others.
        id_mapping: ViTT's ``id_mapping.json`` (a path or the mapping itself): its
            YouTube-8M ids become YouTube ids, and ids it lacks are dropped.

    Returns:
        video id -> VideoEvents, in file order, events in file order.
    """
    return read_annotation_file(
        path,
        strict=strict,
        subset=subset,
        durations=durations,
        id_mapping=id_mapping,
    ).videos


def read_annotation_file(
    path: str | os.PathLike,
    *,
    strict: bool = False,
    subset: str | None = None,
    durations: Mapping[str, float] | None = None,
    id_mapping: Mapping[str, str] | str | os.PathLike | None = None,
) -> AnnotationFile:
    """``load_annotations`` with what was found about the file (its layout and
    subsets), for summaries; the arguments are the same."""
    source = os.fspath(path)
    file, named = split_subset(source)
    if named is not None and subset is not None and named != subset:
        raise DensevidError(
            f"{source}: names subset '{named}', but subset '{subset}' was asked for"
        )
    data = read_json(file, lines=True)
    if id_mapping is not None and not isinstance(id_mapping, Mapping):
        id_mapping = check_id_mapping(read_json(id_mapping), os.fspath(id_mapping))
    dropped = Findings(source, table=DROPS, category=AnnotationWarning)
    converted = convert(
        data,
        source,
        subset=named or subset,
        durations=durations,
        id_mapping=id_mapping,
        drop=dropped.add,
    )
    videos = _activitynet_videos(converted.annotations, source, strict)
    dropped.report()
    return AnnotationFile(
        source,
        videos,
        converted.layout,
        converted.subset,
        converted.subsets,
        converted.about,
    )


def _activitynet_videos(
    data: dict[str, Any], path: str, strict: bool
) -> dict[str, VideoEvents]:
    """The checks every annotation file goes through, in the ActivityNet shape."""
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


def is_submission(data: Any) -> bool:
    """Whether parsed JSON is meant as predictions rather than annotations: it names
    a submission field, or every value is a list (the bare mapping other toolkits
    write). Annotation values are objects."""
    if not isinstance(data, dict) or not data:
        return False
    if any(key in data for key in SUBMISSION_FIELDS):
        return True
    return all(isinstance(v, list) for v in data.values())


def load_submission(
    path: str | os.PathLike,
    *,
    max_per_video: int | None = None,
    strict: bool = False,
) -> dict[str, VideoEvents]:
    """Reads predictions: the official submission, or a bare ``{video_id: [...]}``.

    Everything the official scorer scores is kept as written, so that the numbers
    are its numbers: negative, reversed and zero-length times, empty sentences,
    duplicate events, and video ids as spelt (``densevid.metrics`` matches them to
    the references). Each kind of oddity, and each shape other toolkits write
    (no ``results`` wrapper, ``caption`` or ``text`` for ``sentence``), is counted
    in one ``SubmissionWarning``.

    Args:
        path: the JSON file.
        max_per_video: keep each video's first events only, in file order, as the
            official evaluation does; oddities are counted among those kept.
        strict: raise one DensevidError naming every kind of oddity instead of
            warning.

    Returns:
        video id (as written) -> VideoEvents, events in file order.
    """
    findings = Findings(str(path))
    data = read_json(path, object_pairs_hook=_last_wins(findings))
    results = _results_of(data, path, findings)
    videos: dict[str, VideoEvents] = {}
    for raw_id, entries in results.items():
        video_id = str(raw_id)
        where = f"video {video_id}"
        if not isinstance(entries, list):
            raise DensevidError(
                f"{path}: {where}: expected a list of events, got {_kind(entries)}"
            )
        if max_per_video is not None:
            entries = entries[:max_per_video]
        events = []
        for i, entry in enumerate(entries):
            at = f"{where}, event {i}"
            try:
                events.append(_read_event(entry, at, findings))
            except DensevidError as e:
                raise DensevidError(f"{path}: {at}: {e}") from None
        videos[video_id] = VideoEvents(video_id, tuple(events))
    _count_event_oddities(videos, findings)
    findings.report(strict=strict)
    return videos


def _last_wins(findings: Findings) -> Callable[[list[tuple[str, Any]]], dict]:
    """A JSON object hook that keeps the last value of a repeated key, as Python's
    ``json.load`` in the official scorer does, and counts the repeats: a video
    given twice silently loses its first list of events."""

    def build(pairs: list[tuple[str, Any]]) -> dict:
        out: dict = {}
        for key, value in pairs:
            if key in out:
                findings.add("repeated_key", detail=repr(key))
            out[key] = value
        return out

    return build


def _results_of(data: Any, path: str | os.PathLike, findings: Findings) -> dict:
    """The ``{video_id: [events]}`` part of a submission, noting a missing wrapper
    or missing official fields."""
    if not isinstance(data, dict):
        raise DensevidError(
            f"{path}: expected an object with 'results', got {_kind(data)}"
        )
    if "results" in data:
        results = data["results"]
        if not isinstance(results, dict):
            raise DensevidError(
                f"{path}: 'results' must be an object {{video_id: [events]}}, "
                f"got {_kind(results)}"
            )
        missing = [f"'{k}'" for k in SUBMISSION_FIELDS if k not in data]
        if missing:
            findings.add("no_fields", detail=" or ".join(missing))
        return results
    named = [k for k in SUBMISSION_FIELDS if k in data]
    if named:
        have = ", ".join(f"'{k}'" for k in list(data)[:6])
        raise DensevidError(
            f"{path}: a submission without 'results' (has {have}); the predictions "
            "go in 'results': {video_id: [events]}"
        )
    if data and not all(isinstance(v, list) for v in data.values()):
        raise DensevidError(
            f"{path}: not a submission: no 'results' and its values are not lists "
            "of events (an annotation file?)"
        )
    findings.add("no_results")
    return data


def _read_event(entry: Any, where: str, findings: Findings) -> Event:
    """One submission entry, times kept as written (see ``Event.as_given``)."""
    if not isinstance(entry, dict):
        raise DensevidError(f"an event must be a JSON object, got {_kind(entry)}")
    keys = {}
    for official, names in (("sentence", SENTENCE_KEYS), ("timestamp", TIMESTAMP_KEYS)):
        key = next((k for k in names if k in entry), None)
        if key is None:
            raise DensevidError(
                f"missing key '{official}' (have: {', '.join(map(str, entry))})"
            )
        keys[official] = key
    renamed = [
        f"'{k}' for '{official}'" for official, k in keys.items() if k != official
    ]
    for i, name in enumerate(renamed):  # one event, however many names
        findings.add("field_names", where, n=int(i == 0), detail=name)
    text = entry[keys["sentence"]]
    if not isinstance(text, str):
        raise DensevidError(f"sentence must be a string, got {_kind(text)}")
    span = entry[keys["timestamp"]]
    start, end = _parse_span(span, allow_negative=True)
    if any(isinstance(t, str) for t in span):
        findings.add("string_times", where)
    score = entry.get("score", entry.get("proposal_score"))
    if score is not None:
        try:
            score = _number(score, "score")
        except DensevidError:
            findings.add("bad_score", f"{where}: {score!r}")
            score = None
    if start < 0 or end < start:
        return Event.as_given(start, end, text, score)
    return Event(start, end, text, score)


def _count_event_oddities(
    videos: Mapping[str, VideoEvents], findings: Findings
) -> None:
    """Times and sentences the official scorer takes as given but that no model
    means: negative, reversed or zero-length times, empty sentences, repeats."""
    for video_id, video in videos.items():
        seen: set[tuple[float, float, str]] = set()
        for i, e in enumerate(video.events):
            where = f"video {video_id}, event {i}"
            span = f"{where} [{e.start:g}, {e.end:g}]"
            if e.start < 0 or e.end < 0:
                findings.add("negative", span)
            if e.end < e.start:
                findings.add("reversed", span)
            elif e.end == e.start:
                findings.add("zero_length", span)
            if not e.text.strip():
                findings.add("empty_sentence", where)
            key = (e.start, e.end, e.text)
            if key in seen:
                findings.add("duplicate", where)
            seen.add(key)


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
    """Maps predicted ids onto the reference ids they unambiguously stand for (see
    ``resolve_video_ids``).

    Returns predicted id -> reference id for every id that has a match.
    """
    return resolve_video_ids(predicted, reference)[0]


def resolve_video_ids(
    predicted: Iterable[str], reference: Iterable[str]
) -> tuple[dict[str, str], list[str]]:
    """Matches predicted video ids to reference ids, exactly or loosely.

    Toolkits write ids with a file extension (``abc.mp4``) or without the ``v_``
    prefix ActivityNet puts on YouTube ids; the official scorer would silently score
    such videos 0. An id matches loosely when the reference ids it could stand for
    (extension removed, ``v_`` added or removed) are exactly one, which no other
    predicted id matches exactly or loosely.

    Returns:
        (predicted id -> reference id, predicted ids left unmatched because their
        loose match is not unique).
    """
    refs = set(reference)
    preds = list(dict.fromkeys(predicted))
    mapping = {p: p for p in preds if p in refs}
    candidates = {p: _id_variants(p) & refs for p in preds if p not in mapping}
    candidates = {p: c for p, c in candidates.items() if c}
    exact = set(mapping)
    n_fits = Counter(r for c in candidates.values() for r in c)
    ambiguous = []
    for pid, cands in candidates.items():
        ref = next(iter(cands))
        if len(cands) == 1 and n_fits[ref] == 1 and ref not in exact:
            mapping[pid] = ref
        else:
            ambiguous.append(pid)
    return mapping, ambiguous


def _id_variants(video_id: str) -> set[str]:
    """The ids ``video_id`` may stand for: without a video file extension, and
    with the ``v_`` prefix added or removed (on either)."""
    base = strip_video_extension(video_id)
    out = {base}
    for name in (video_id, base):
        out.add(name[2:] if name.startswith("v_") else f"v_{name}")
    out.discard(video_id)
    return out


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


def _parse_span(
    span: Any, where: str | None = None, *, allow_negative: bool = False
) -> tuple[float, float]:
    prefix = f"{where}: " if where else ""
    if not isinstance(span, list | tuple) or len(span) != 2:
        raise DensevidError(f"{prefix}timestamp must be [start, end], got {span!r}")
    start = _number(span[0], "start", where)
    end = _number(span[1], "end", where)
    if not allow_negative and (start < 0 or end < 0):
        raise DensevidError(f"{prefix}negative time in [{start}, {end}]")
    return start, end


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string"}.get(
        type(value), type(value).__name__
    )

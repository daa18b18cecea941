"""The annotation layouts datasets release, turned into the ActivityNet Captions shape.

densevid checks annotations in one shape, ``{video_id: {"duration", "timestamps",
"sentences"}}`` (``densevid.events.load_annotations``), so every rule about times,
sentences and durations is the same whatever file a user brings. This module only
recognises the other layouts by their shape and rewrites them into that one; it
knows nothing of ``Event`` (``events.py`` imports it, not the other way round).

- ActivityNet Captions: read as it is.
- YouCook2 (``youcookii_annotations_trainval.json``): ``{"database": {video_id:
  {"duration", "subset", "recipe_type", "video_url", "annotations": [{"segment",
  "id", "sentence"}]}}}``. One subset is read at a time (``FILE#training`` or a
  ``subset`` argument), since training and validation videos must never be mixed
  by accident; like VidChapters' conversion, only the duration, segments and
  sentences are kept.
- ViTT (``ViTT-annotations.json``): JSON lines ``{"id": <YouTube-8M id>,
  "annotations": [{"timestamp": <ms>, "tag"}]}``, one line per annotation set.
  Timestamps are chapter starts: a chapter ends where the next starts and the last
  at the video's end, so the durations must come from elsewhere (the videos or
  their features, ``video_durations``). Sets are kept and dropped by VidChapters'
  rules, so numbers compare with theirs (see ``_vitt``).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from densevid.errors import DensevidError, plural

ACTIVITYNET = "ActivityNet Captions"
YOUCOOK2 = "YouCook2"
VITT = "ViTT"

# ViTT includes its videos with more than this many annotation sets only for
# studies of inter-annotator agreement; VidChapters leaves them out.
VITT_MAX_SETS = 3
# How to supply what ViTT lacks, said wherever it is missing.
DURATIONS_HOW = (
    "pass durations={video_id: seconds} to load_annotations, or run "
    "'densevid check FILE --durations DIR [--id-mapping id_mapping.json] -o "
    "OUT.json' with DIR the videos or their FEATURES directory, and use OUT.json"
)

# What a conversion leaves out, for ``events.Findings``: one counted warning per
# kind, worded as its submission oddities are. {n} counts videos or sets.
DROPS: dict[str, tuple[str, str]] = {
    "unmapped": (
        "{n} ViTT video{s} not in the id mapping ({detail})",
        ": dropped, as VidChapters drops them",
    ),
    "no_duration": (
        "{n} video{s} without a duration ({detail})",
        ": dropped (a last chapter has no end without one)",
    ),
    "many_sets": (
        f"{{n}} video{{s}} with more than {VITT_MAX_SETS} annotation sets ({{detail}})",
        ": dropped, as VidChapters drops them (ViTT includes them for studies of "
        "annotator agreement)",
    ),
    "no_chapters": (
        "{n} annotation set{s} without chapters",
        ": dropped (ViTT's release leaves such sets out)",
    ),
    "empty_tag": (
        "{n} annotation set{s} with an empty tag",
        ": dropped, as VidChapters drops them",
    ),
    "past_end": (
        "{n} annotation set{s} with a chapter starting past the video's duration",
        ": dropped, as VidChapters drops them",
    ),
    "not_increasing": (
        "{n} annotation set{s} whose chapter starts do not increase",
        ": dropped, as VidChapters drops them",
    ),
}

Drop = Callable[..., None]  # Findings.add: (kind, where, *, n=1, detail=None)


@dataclass
class Converted:
    """An annotation file rewritten into the ActivityNet Captions shape.

    ``subsets`` is every subset the file holds with its number of videos (empty for
    layouts without subsets); ``about`` says in a few words what else a summary
    should tell (ViTT: how many videos and sets the file has).
    """

    layout: str
    annotations: dict[str, Any]
    subset: str | None = None
    subsets: dict[str, int] = field(default_factory=dict)
    about: str = ""


def split_subset(path: str | os.PathLike) -> tuple[str, str | None]:
    """``'yc2.json#training'`` -> ``('yc2.json', 'training')``.

    The suffix lets a config's ``train_annotations`` or any command's file
    argument name a subset without a new option everywhere. A path that exists as
    written is a file name, ``#`` and all.
    """
    text = os.fspath(path)
    if "#" not in text or Path(text).exists():
        return text, None
    file, _, subset = text.rpartition("#")
    if not subset:
        raise DensevidError(f"{text}: no subset name after '#'")
    return file, subset


def layout_of(data: Any) -> str | None:
    """The layout parsed JSON is in, by its shape; None when it is none of them."""
    if isinstance(data, list):
        first = data[0] if data else None
        return VITT if isinstance(first, dict) and "annotations" in first else None
    if not isinstance(data, dict):
        return None
    if "id" in data and isinstance(data.get("annotations"), list):
        return VITT  # a one-line ViTT file parses as one object
    database = data.get("database")
    if isinstance(database, dict) and "duration" not in database:
        return YOUCOOK2
    return ACTIVITYNET


def subsets_of(data: Any) -> dict[str, int]:
    """Subset -> number of videos, in file order, for a layout with subsets
    (YouCook2); empty for the others. Entries without a subset are not counted."""
    if layout_of(data) != YOUCOOK2:
        return {}
    counts: dict[str, int] = {}
    for entry in data["database"].values():
        subset = entry.get("subset") if isinstance(entry, dict) else None
        if isinstance(subset, str):
            counts[subset] = counts.get(subset, 0) + 1
    return counts


def convert(
    data: Any,
    source: str,
    *,
    subset: str | None = None,
    durations: Mapping[str, float] | None = None,
    id_mapping: Mapping[str, str] | None = None,
    drop: Drop | None = None,
) -> Converted:
    """Rewrites parsed annotations of any known layout into the ActivityNet shape.

    Args:
        data: the parsed file (a list for JSON lines).
        source: the file as the user named it, for messages.
        subset: the subset to keep (YouCook2); an error for layouts without.
        durations: video id -> seconds, for layouts that lack them (ViTT); other
            layouts carry their own and ignore it.
        id_mapping: ViTT's YouTube-8M id -> YouTube id (``id_mapping.json``).
        drop: called once per video or set a conversion leaves out
            (``Findings.add``, with a kind of ``DROPS``).

    Raises:
        DensevidError: one line naming ``source`` and what is wrong.
    """
    layout = layout_of(data)
    if isinstance(data, dict) and "results" in data and "version" in data:
        raise DensevidError(
            f"{source}: this is a submission (has 'results'), not an annotation file"
        )
    if layout is None:
        raise DensevidError(
            f"{source}: expected an object {{video_id: annotation}} "
            f"({ACTIVITYNET}), YouCook2's {{\"database\": ...}} or ViTT's JSON "
            f"lines, got {_kind(data)}"
        )
    if subset is not None and layout != YOUCOOK2:
        raise DensevidError(
            f"{source}: a subset ('{subset}') was named, but {layout} annotations "
            "hold no subsets"
        )
    noted: Drop = drop or (lambda kind, where="", **kw: None)
    if layout == YOUCOOK2:
        return _youcook2(data["database"], source, subset)
    if layout == VITT:
        records = data if isinstance(data, list) else [data]
        return _vitt(records, source, durations, id_mapping, noted)
    return Converted(ACTIVITYNET, data)


def check_id_mapping(data: Any, source: str) -> dict[str, str]:
    """ViTT's ``id_mapping.json`` ({YouTube-8M id: YouTube id}), checked."""
    if not isinstance(data, dict):
        raise DensevidError(
            f"{source}: expected an id mapping {{YouTube-8M id: YouTube id}}, "
            f"got {_kind(data)}"
        )
    for key, value in data.items():
        if not isinstance(value, str):
            raise DensevidError(
                f"{source}: id {key} maps to {value!r}, not a YouTube id"
            )
    return {str(k): v for k, v in data.items()}


def video_durations(directory: str | os.PathLike) -> dict[str, float]:
    """Video id (file stem) -> duration in seconds, from a directory of videos
    (probed) or from a FEATURES directory (its sidecars' ``duration``).

    Annotations that give chapter starts only (ViTT) need these to end the last
    chapter; the features a user extracted or imported already recorded them, so
    they need not keep the videos.
    """
    from densevid.files import find_videos

    root = Path(directory)
    if not root.is_dir():
        raise DensevidError(
            f"{root}: not a directory (durations come from the videos or their "
            "FEATURES directory)"
        )
    videos = find_videos([root], problems={})
    out = _probed(videos) if videos else _from_sidecars(root)
    if not out:
        raise DensevidError(
            f"{root}: no videos and no feature sidecars with a 'duration' "
            "(FEATURES/<extractor>/<video_id>.json): no durations to read"
        )
    return out


def _probed(videos: list[Path]) -> dict[str, float]:
    """Durations of video files, the first file of a stem winning; the ones that
    do not open are counted in one warning, since the others are still useful."""
    from densevid.video import VideoDecodeError, probe

    out: dict[str, float] = {}
    failed: list[str] = []
    for path in videos:
        if path.stem in out:
            continue
        try:
            out[path.stem] = probe(path).duration
        except VideoDecodeError:
            failed.append(path.name)
    if failed:
        shown = ", ".join(failed[:3]) + (", ..." if len(failed) > 3 else "")
        warnings.warn(
            f"{videos[0].parent}: {plural(len(failed), 'video')} could not be "
            f"opened for their duration ({shown}): their annotations are dropped",
            stacklevel=3,
        )
    return out


def _from_sidecars(root: Path) -> dict[str, float]:
    """The ``duration`` of each video's sidecars in a FEATURES directory (the
    first extractor in name order that has one). An unreadable sidecar is passed
    over: another extractor's may serve, and a video left without any is counted
    where its annotations are dropped."""
    out: dict[str, float] = {}
    for stream in sorted(p for p in root.iterdir() if p.is_dir()):
        if stream.name.startswith("."):
            continue
        for sidecar in sorted(stream.glob("*.json")):
            if sidecar.name.startswith(".") or sidecar.stem in out:
                continue
            try:
                meta = json.loads(sidecar.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            value = meta.get("duration") if isinstance(meta, dict) else None
            if _is_number(value) and math.isfinite(value) and value > 0:
                out[sidecar.stem] = float(value)
    return out


def _youcook2(database: dict, source: str, subset: str | None) -> Converted:
    """One subset of YouCook2's official file: duration, segments and sentences,
    what VidChapters' conversion keeps; ``recipe_type``, ``video_url`` and the
    segment ids are not annotations of events."""
    subsets: dict[str, int] = {}
    for video_id, entry in database.items():
        where = f"{source}: video {video_id}"
        if not isinstance(entry, dict):
            raise DensevidError(f"{where}: expected an object, got {_kind(entry)}")
        name = entry.get("subset")
        if not isinstance(name, str):
            raise DensevidError(
                f"{where}: no 'subset' (YouCook2 names each video's: training, "
                "validation or testing)"
            )
        subsets[name] = subsets.get(name, 0) + 1
    if not subsets:
        raise DensevidError(f"{source}: YouCook2 'database' holds no videos")
    held = ", ".join(f"{s} ({plural(n, 'video')})" for s, n in subsets.items())
    if subset is None:
        if len(subsets) > 1:
            first = next(iter(subsets))
            raise DensevidError(
                f"{source}: a YouCook2 file with {len(subsets)} subsets, {held}: "
                f"name one, as {source}#{first} (or --subset {first} on the command "
                f"line, subset='{first}' in Python)"
            )
        subset = next(iter(subsets))
    elif subset not in subsets:
        raise DensevidError(f"{source}: no subset '{subset}'; the file holds {held}")
    out: dict[str, Any] = {}
    for video_id, entry in database.items():
        if entry["subset"] != subset:
            continue
        where = f"{source}: video {video_id}"
        if "duration" not in entry:
            raise DensevidError(f"{where}: missing key 'duration'")
        events = entry.get("annotations")
        if not isinstance(events, list):
            raise DensevidError(f"{where}: 'annotations' must be a list of segments")
        spans, sentences = [], []
        for i, event in enumerate(events):
            at = f"{where}, event {i}"
            if not isinstance(event, dict):
                raise DensevidError(f"{at}: expected an object, got {_kind(event)}")
            for key in ("segment", "sentence"):
                if key not in event:
                    hint = (
                        " (YouCook2 releases its testing subset without sentences)"
                        if key == "sentence" and subset == "testing"
                        else ""
                    )
                    raise DensevidError(f"{at}: missing key '{key}'{hint}")
            spans.append(event["segment"])
            sentences.append(event["sentence"])
        out[str(video_id)] = {
            "duration": entry["duration"],
            "timestamps": spans,
            "sentences": sentences,
        }
    return Converted(YOUCOOK2, out, subset, subsets)


def _vitt(
    records: list,
    source: str,
    durations: Mapping[str, float] | None,
    id_mapping: Mapping[str, str] | None,
    drop: Drop,
) -> Converted:
    """ViTT's annotation sets as VidChapters reads them.

    A chapter runs from its start to the next start, the last to the video's end.
    Ids go through ``id_mapping`` when given (ids missing from it are dropped).
    A video with one set keeps its id; a video with several has one entry per set,
    ``0_<id>``, ``1_<id>``..., numbered in file order, as VidChapters names the
    sets of its dev and test videos (it does not number a dev or test video whose
    file holds a single set; without ViTT's split lists that case cannot be told
    apart). A video with more than ``VITT_MAX_SETS`` sets is dropped, then each set
    with an empty tag, a chapter starting past the duration, or starts that do not
    increase; each kind is counted through ``drop``.
    """
    if durations is None:
        raise DensevidError(
            f"{source}: ViTT annotations give chapter starts only, so each video's "
            f"duration is needed to end its last chapter: {DURATIONS_HOW}"
        )
    sets: dict[str, list[list[tuple[float, str]]]] = {}
    unmapped: dict[str, None] = {}
    for i, record in enumerate(records):
        raw_id, chapters = _vitt_record(record, f"{source}: record {i + 1}")
        if id_mapping is not None:
            if raw_id not in id_mapping:
                unmapped.setdefault(raw_id)
                continue
            video_id = id_mapping[raw_id]
        else:
            video_id = raw_id
        sets.setdefault(video_id, []).append(chapters)
    for raw_id in unmapped:
        drop("unmapped", detail=raw_id)
    out: dict[str, Any] = {}
    missing = []
    for video_id, video_sets in sets.items():
        if video_id not in durations:
            missing.append(video_id)
            drop("no_duration", detail=video_id)
            continue
        if len(video_sets) > VITT_MAX_SETS:
            drop("many_sets", detail=video_id)
            continue
        duration = durations[video_id]
        for k, chapters in enumerate(video_sets):
            key = video_id if len(video_sets) == 1 else f"{k}_{video_id}"
            problem = _vitt_set_problem(chapters, duration)
            if problem:
                drop(problem, f"video {video_id}, set {k}")
                continue
            starts = [t for t, _ in chapters]
            ends = [*starts[1:], duration]
            out[key] = {
                "duration": duration,
                "timestamps": [[s, e] for s, e in zip(starts, ends, strict=True)],
                "sentences": [tag for _, tag in chapters],
            }
    if sets and len(missing) == len(sets):
        looked_up = (
            "YouTube ids (after the id mapping)"
            if id_mapping is not None
            else "the file's own ids, YouTube-8M ids unless mapped with "
            "--id-mapping id_mapping.json (id_mapping= in Python)"
        )
        raise DensevidError(
            f"{source}: none of its {plural(len(sets), 'video')} has a duration; "
            f"durations are looked up by {looked_up}, e.g. '{missing[0]}'"
        )
    about = (
        f"{plural(len(sets) + len(unmapped), 'video')} and "
        f"{plural(len(records), 'annotation set')} in the file"
    )
    return Converted(VITT, out, about=about)


def _vitt_record(record: Any, where: str) -> tuple[str, list[tuple[float, str]]]:
    """(id, [(start in seconds, tag)]) of one ViTT line, or one error naming it."""
    if not isinstance(record, dict):
        raise DensevidError(
            f'{where}: expected a ViTT object {{"id", "annotations"}}, got '
            f"{_kind(record)}"
        )
    raw_id = record.get("id")
    if not isinstance(raw_id, str | int) or isinstance(raw_id, bool):
        raise DensevidError(f"{where}: missing or non-text 'id'")
    where = f"{where} (video {raw_id})"
    chapters = record.get("annotations")
    if not isinstance(chapters, list):
        raise DensevidError(f"{where}: 'annotations' must be a list of chapters")
    out = []
    for j, chapter in enumerate(chapters):
        at = f"{where}, chapter {j}"
        if not isinstance(chapter, dict):
            raise DensevidError(f"{at}: expected an object, got {_kind(chapter)}")
        for key in ("timestamp", "tag"):
            if key not in chapter:
                raise DensevidError(f"{at}: missing key '{key}'")
        tag = chapter["tag"]
        if not isinstance(tag, str):
            raise DensevidError(f"{at}: tag must be a string, got {_kind(tag)}")
        out.append((_milliseconds(chapter["timestamp"], at) / 1000.0, tag))
    return str(raw_id), out


def _vitt_set_problem(chapters: list[tuple[float, str]], duration: float) -> str:
    """The first reason VidChapters drops this set for, or '' to keep it."""
    if not chapters:
        return "no_chapters"
    if any(not tag.strip() for _, tag in chapters):
        return "empty_tag"
    starts = [t for t, _ in chapters]
    if any(t > duration for t in starts[1:]):
        return "past_end"
    ends = [*starts[1:], duration]
    if any(e <= s for s, e in zip(starts, ends, strict=True)):
        return "not_increasing"
    return ""


def _milliseconds(value: Any, where: str) -> float:
    """A ViTT timestamp: a number, or a numeric string as VidChapters accepts."""
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if not _is_number(number) or not math.isfinite(number):
        raise DensevidError(f"{where}: timestamp must be milliseconds, got {value!r}")
    return float(number)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string"}.get(
        type(value), type(value).__name__
    )

"""The import run: distributed feature files -> densevid's feature cache.

``import_features`` is what ``densevid import`` calls. Like ``densevid extract`` it
is built for whole datasets:

- streaming: one video's rows are read, timed and written before the next is read
  (``readers``), so memory holds one video, whatever the size of the source file;
- ids: with annotation files, each source id is written under the annotation id it
  stands for (the ``v_`` prefix added or removed, as ``events.resolve_video_ids``
  matches ids), and the videos missing on either side are reported;
- time: every row gets its true time in the sidecar (``formats``), and the video's
  duration comes from the annotations when given;
- incremental and crash-safe: the cache writes each file atomically, and a stream
  complete in FEATURES is skipped, so a killed or extended run redoes only what is
  missing;
- forgiving: a video that cannot be read (a missing key, a wrong shape) is one line
  in the summary and the run goes on; a file that cannot be read at all, or fits
  its format nowhere, is one error before anything is written.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from densevid.errors import DensevidError, plural
from densevid.events import read_json, resolve_video_ids
from densevid.features import cache
from densevid.features.extract import StreamReport, prepare_output_dir
from densevid.features.registry import option_differences
from densevid.importers.formats import (
    Format,
    get_format,
    overruns,
    row_times,
    rows_duration,
)
from densevid.importers.readers import (
    Entry,
    Hdf5Source,
    NpySource,
    PthSource,
    Source,
)

logger = logging.getLogger(__name__)

MAX_NAMED = 5  # ids a summary line names before "..."
MAX_FAILED_LINES = 20  # failures the summary lists one per line


@dataclass
class ImportReport(StreamReport):
    """What a run did, per (video id, stream), and which videos it could not pair.

    Attributes:
        format: the format imported.
        n_videos: source videos paired with an annotation (all, without one).
        done / skipped / failed: (video id, stream[, why]) written, found complete,
            not written.
        no_features: annotation ids that no source video stands for.
        no_annotation: source ids that stand for no annotation id.
        ambiguous: source ids that could stand for several annotation ids, or for
            one that another source id names exactly; not imported.
        missing_streams: stream -> paired videos the sources have no rows for
            (MDVC's videos without audio, a video absent from the ASR file).
        overrun: videos whose rows reach past their duration by more than a row.
    """

    format: str = ""
    no_features: list[str] = field(default_factory=list)
    no_annotation: list[str] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)
    missing_streams: dict[str, list[str]] = field(default_factory=dict)
    overrun: list[str] = field(default_factory=list)

    @property
    def imported_videos(self) -> set[str]:
        """Videos this run wrote streams of, none failing."""
        return self.written_videos

    def summary(self) -> str:
        """Several lines: the counts, the videos missing on either side, then one
        line per failed stream."""
        lines = [
            f"{self.format}: {plural(self.n_videos, 'video')} in {self.seconds:.1f} s: "
            f"{len(self.imported_videos)} imported, {self.n_complete_before} "
            f"already complete, {len(self.failed_videos)} failed"
        ]
        if self.no_features:
            lines.append(
                f"  {plural(len(self.no_features), 'annotated video')} without "
                f"features: {_named(self.no_features)}"
            )
        if self.no_annotation:
            lines.append(
                f"  {plural(len(self.no_annotation), 'video')} of the features "
                f"without annotation (not imported): {_named(self.no_annotation)}"
            )
        for stream, vids in sorted(self.missing_streams.items()):
            lines.append(
                f"  {plural(len(vids), 'video')} without {stream} in the sources: "
                f"{_named(vids)}"
            )
        failed = [f"  failed {vid} [{s}]: {why}" for vid, s, why in self.failed]
        if len(failed) > MAX_FAILED_LINES:
            more = len(failed) - MAX_FAILED_LINES
            failed = failed[:MAX_FAILED_LINES] + [f"  ... and {more} more failed"]
        return "\n".join(lines + failed)


def _named(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:MAX_NAMED])
    return shown + (", ..." if len(ids) > MAX_NAMED else "")


def import_features(
    fmt: str,
    sources: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    annotations: Sequence[str | os.PathLike] | None = None,
    asr: str | os.PathLike | None = None,
    overwrite: bool = False,
    allow_pickle: bool = False,
    verbose: bool = True,
) -> ImportReport:
    """Imports one format's feature files into ``out_dir`` (see the module
    docstring).

    Args:
        fmt: a name of ``densevid.importers.FORMATS`` (tsp, c3d, tsn, i3d, vggish,
            mdvc, clip-pth).
        sources: the format's files or directories (HDF5 files, .npy folders, .pth).
        out_dir: the FEATURES directory; streams go to ``out_dir/<stream>/``.
        annotations: annotation files (ActivityNet format, or the official
            ``{"database": ...}`` one): ids to write under and durations. Required
            for formats whose rows carry no time (c3d, tsn).
        asr: clip-pth only: VidChapters' ASR pickle, imported as a speech stream.
        overwrite: rewrite streams that are complete.
        allow_pickle: unpickle arbitrary objects in .pth/.pkl files (trusted files
            only); without it only tensors, containers and numbers are read.
        verbose: show a progress bar.

    Returns:
        An ImportReport (``summary()`` prints it). Videos that fail are reported
        there, not raised; bad arguments and unreadable files raise DensevidError
        before anything is written.
    """
    t0 = time.perf_counter()
    spec = get_format(fmt)
    if asr is not None and not spec.speech_stream:
        raise DensevidError(
            f"--asr: the {spec.name} format has no speech stream (clip-pth has)"
        )
    if not sources:
        raise DensevidError(f"import {spec.name} needs SOURCE files")
    durations = annotation_durations(annotations) if annotations else None
    if spec.stride_s is None and durations is None:
        raise DensevidError(
            f"{spec.name} rows carry no time of their own: give --annotations FILE "
            "for each video's duration"
        )
    out = Path(out_dir)
    prepare_output_dir(out)
    report = ImportReport(format=spec.name)
    with open_source(spec, sources, asr=asr, allow_pickle=allow_pickle) as src:
        entries = src.entries()
        if src.n_duplicates:
            warnings.warn(
                f"{plural(src.n_duplicates, 'video stream')} found again in a later "
                "source file: the first kept",
                stacklevel=2,
            )
        pairs = pair_videos(entries, durations, report, sources, annotations)
        streams = list(spec.streams) + ([spec.speech_stream] if asr else [])
        for stream in streams:
            cache.remove_stale_tmp(out / stream)
            if not overwrite:
                check_same_config(out, stream, spec)
        report.n_videos = len(pairs)
        logger.info(
            "importing %s: %s into %s",
            spec.name,
            plural(len(pairs), "video"),
            out,
        )
        _run(src, spec, pairs, durations, streams, out, overwrite, report, verbose)
    report.done.sort()
    report.failed.sort()
    if report.overrun:
        warnings.warn(
            f"{plural(len(report.overrun), 'video')}' rows run more than a row past "
            f"the annotated duration ({_named(sorted(report.overrun))}): are they "
            f"{spec.name} features of these videos?",
            stacklevel=2,
        )
    report.seconds = time.perf_counter() - t0
    return report


def open_source(
    spec: Format,
    sources: Sequence[str | os.PathLike],
    *,
    asr: str | os.PathLike | None = None,
    allow_pickle: bool = False,
) -> Source:
    """The reader of the format's container over the given files."""
    paths = [Path(s) for s in sources]
    if spec.container == "hdf5":
        return Hdf5Source(spec, paths)
    if spec.container == "npy":
        return NpySource(spec, paths)
    return PthSource(
        spec,
        paths,
        asr=Path(asr) if asr is not None else None,
        allow_pickle=allow_pickle,
    )


def annotation_durations(paths: Sequence[str | os.PathLike]) -> dict[str, float]:
    """Video id -> duration (s) of every video of the annotation files, in file
    order (a video in several files keeps its first duration).

    Reads the ActivityNet Captions format ({id: {"duration", ...}}) and the
    official one with a "database" object (YouCook2's release); only the durations
    are needed, so the events are not checked here.
    """
    out: dict[str, float] = {}
    for path in paths:
        data = read_json(path)
        if isinstance(data, dict) and isinstance(data.get("database"), dict):
            data = data["database"]
        if not isinstance(data, dict) or not data:
            raise DensevidError(
                f"{path}: expected annotations {{video_id: {{duration, ...}}}}"
            )
        for vid, ann in data.items():
            duration = ann.get("duration") if isinstance(ann, dict) else None
            try:
                value = float(duration)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise DensevidError(
                    f"{path}: video {vid}: no numeric 'duration'"
                ) from None
            if not (math.isfinite(value) and value > 0):
                raise DensevidError(f"{path}: video {vid}: duration {duration} <= 0")
            out.setdefault(str(vid), value)
    return out


def pair_videos(
    entries: Mapping[str, Entry],
    durations: Mapping[str, float] | None,
    report: ImportReport,
    sources: Sequence[str | os.PathLike],
    annotations: Sequence[str | os.PathLike] | None,
) -> list[tuple[str, Entry]]:
    """(id to write under, entry) for each source video, sorted by id.

    Without annotations the source ids are kept. With them, a source id is
    written under the annotation id it unambiguously stands for; the others are
    counted in ``report`` (and the ambiguous ones warned about).
    """
    if durations is None:
        return sorted(entries.items())
    mapping, ambiguous = resolve_video_ids(entries, durations)
    report.ambiguous = sorted(ambiguous)
    report.no_annotation = sorted(set(entries) - set(mapping) - set(ambiguous))
    taken = set(mapping.values())
    report.no_features = [vid for vid in durations if vid not in taken]
    if ambiguous:
        warnings.warn(
            f"{plural(len(ambiguous), 'video')} of the features could stand for "
            "several annotated videos, or for one another source id names exactly: "
            f"not imported ({_named(report.ambiguous)})",
            stacklevel=3,
        )
    if not mapping:
        some_src = ", ".join(sorted(entries)[:3])
        some_ann = ", ".join(list(durations)[:3])
        raise DensevidError(
            f"no video of {', '.join(map(str, sources))} is in "
            f"{', '.join(map(str, annotations or []))} (feature ids such as "
            f"{some_src}; annotated ids such as {some_ann})"
        )
    return sorted(((mapping[sid], entries[sid]) for sid in mapping), key=_first)


def _first(pair: tuple[str, Entry]) -> str:
    return pair[0]


def check_same_config(out: Path, stream: str, spec: Format) -> None:
    """Refuses to add to (or skip as done) a stream written with other timing or
    from another format: the old videos would keep rows timed otherwise."""
    d = out / stream
    if not d.is_dir():
        return
    wanted = json.loads(json.dumps(spec.config()))
    for js, found in cache.stored_configs(d):
        if not isinstance(found, dict):
            continue
        diff = option_differences(stream, found, wanted, ("there", "now"))
        if not diff:
            return
        raise DensevidError(
            f"{d} holds {stream} features written otherwise ({'; '.join(diff)}; "
            f"{js.name}): import to another directory, or pass --overwrite to "
            "rewrite them all"
        )


def _run(
    src: Source,
    spec: Format,
    pairs: Sequence[tuple[str, Entry]],
    durations: Mapping[str, float] | None,
    streams: Sequence[str],
    out: Path,
    overwrite: bool,
    report: ImportReport,
    verbose: bool,
) -> None:
    """Imports the paired videos one at a time, with a progress bar."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    job = _Job(src, spec, out, overwrite, report)
    with logging_redirect_tqdm():
        for vid, entry in tqdm(pairs, unit="video", disable=not verbose, desc="import"):
            duration = durations[vid] if durations is not None else None
            for stream in streams:
                job.stream(vid, entry, stream, duration)


@dataclass
class _Job:
    """What every stream of the run shares: where from, where to, the report."""

    src: Source
    spec: Format
    out: Path
    overwrite: bool
    report: ImportReport

    def stream(
        self, vid: str, entry: Entry, stream: str, duration: float | None
    ) -> None:
        """One stream of one video: skipped, written, failed or counted missing."""
        report, spec = self.report, self.spec
        speech = stream == spec.speech_stream
        has = entry.speech is not None if speech else stream in entry.parts
        if not has and stream not in entry.problems:
            report.missing_streams.setdefault(stream, []).append(vid)
            return
        if not self.overwrite and cache.has_features(self.out, stream, vid):
            report.skipped.append((vid, stream))
            return
        try:
            if not has:
                raise DensevidError(entry.problems[stream])
            if speech:
                write_speech(self.src, spec, vid, entry, duration, self.out)
            elif write_rows(self.src, spec, vid, entry, stream, duration, self.out):
                report.overrun.append(vid)
            report.done.append((vid, stream))
        except DensevidError as e:
            report.failed.append((vid, stream, str(e)))
            logger.warning("%s [%s]: %s", vid, stream, e)


def write_rows(
    src: Source,
    spec: Format,
    vid: str,
    entry: Entry,
    stream: str,
    duration: float | None,
    out: Path,
) -> bool:
    """Reads, times and writes one dense stream of one video; True when its rows
    run past the duration (see ``formats.overruns``)."""
    locs = entry.parts[stream]
    rows = src.read(stream, locs)
    n = rows.shape[0]
    known = duration is not None
    d = float(duration) if known else rows_duration(spec, n)
    meta: dict[str, Any] = {
        "fps": 1.0 / spec.stride_s if spec.stride_s else n / d,
        "duration": d,
        "duration_from": "annotations" if known else "rows",
        "timestamps": row_times(spec, n, d),
        "timing": spec.timing,
        "format": spec.name,
        "clip_s": spec.clip_s,
        "stride_s": spec.stride_s,
        "source": src.origin(locs),
        "source_id": entry.source_id,
        "config": spec.config(),
    }
    cache.save_features(out, stream, vid, rows, meta)
    return known and overruns(spec, n, d)


def write_speech(
    src: Source,
    spec: Format,
    vid: str,
    entry: Entry,
    duration: float | None,
    out: Path,
) -> None:
    """Writes one video's ASR as a speech stream; with a known duration, the
    sentences starting after it are dropped and the last one cut at its end."""
    segments = entry.speech or []
    if duration is not None:
        segments = [
            {**s, "end": min(s["end"], duration)}
            for s in segments
            if s["start"] < duration
        ]
    meta: dict[str, Any] = {
        "format": spec.name,
        "source": [os.path.abspath(p) for p in getattr(src, "asr_paths", [])],
        "source_id": entry.source_id,
        "config": spec.config(),
    }
    if duration is not None:
        meta["duration"] = duration
    cache.save_speech(out, spec.speech_stream, vid, segments, meta)

"""From a video file to events: decode, extract the model's features, generate.

``caption(model, "talk.mp4")`` is what ``densevid caption`` and
``DenseVideoModel.caption`` run. The model sees a fixed number of frames per pass, so a
video much longer than the training videos is captioned in overlapping windows whose
events are merged: an event found in two windows is kept once (the one with the
better score), which is what a user expects from a chapter list. A video whose
features lie far outside those the model was trained on gets one
``OutOfDomainWarning`` (``densevid.domain``): its captions describe the training
world, not the video.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from densevid.config import ProposalOptions
from densevid.decoding import Decodable, DecodingOptions, decode
from densevid.domain import (
    DomainCheck,
    DomainStats,
    OutOfDomainWarning,
    check_video,
    domain_message,
)
from densevid.errors import DensevidError
from densevid.events import Event, VideoEvents
from densevid.features import (
    Extractor,
    FeatureResult,
    available_extractors,
    feature_paths,
    get_extractor,
    has_features,
    load_features,
    load_speech,
)
from densevid.features.cache import load_speech_meta
from densevid.inputs import (
    collate,
    join_streams,
    make_item,
    row_times,
    select_blocks,
    to_device,
)
from densevid.proposals import caption_proposals
from densevid.video import decode_checked, probe

logger = logging.getLogger(__name__)

# Windows overlap by this fraction of their length, so an event cut by one window's
# edge lies whole inside the next one.
WINDOW_OVERLAP = 0.25
# Two events from different windows whose tIoU reaches this are the same event.
MERGE_TIOU = 0.5


@dataclass(frozen=True)
class CaptionOptions:
    """What to generate and what to keep; change per call with ``dataclasses.replace``.

    Attributes:
        decoding: beam or greedy search and its settings.
        window: seconds the model sees per pass; None uses the longest video the model
            was trained on (``ModelConfig.max_duration``), 0 turns windows off.
        max_events: keep at most this many events (best scores first), None for all.
        min_length: drop events shorter than this (seconds).
        score_threshold: drop events whose score (mean token log-probability, <= 0)
            is below this.
        allow_partial: caption the decodable part of a truncated or damaged video
            (the events' duration is that part's) instead of refusing it.
        proposals: the two-stage baseline instead of the joint decoding: the
            model's proposal head finds segments (these options choose them) and
            the model captions each (``densevid.proposals.caption_proposals``).
    """

    decoding: DecodingOptions = field(default_factory=DecodingOptions)
    window: float | None = None
    max_events: int | None = None
    min_length: float = 0.0
    score_threshold: float | None = None
    allow_partial: bool = False
    proposals: ProposalOptions | None = None

    def verify(self) -> CaptionOptions:
        self.decoding.verify()
        if self.proposals is not None:
            self.proposals.verify()
        if self.window is not None and self.window < 0:
            raise DensevidError(f"window must be >= 0 seconds, got {self.window}")
        if self.max_events is not None and self.max_events < 1:
            raise DensevidError(f"max_events must be >= 1, got {self.max_events}")
        if self.min_length < 0:
            raise DensevidError(f"min_length must be >= 0, got {self.min_length}")
        return self


@dataclass
class Timings:
    """Seconds spent per stage, summed over videos (for the speed report)."""

    decode_and_features: float = 0.0
    generation: float = 0.0
    n_videos: int = 0
    video_seconds: float = 0.0


def caption(
    model: Decodable,
    video: str | os.PathLike,
    options: CaptionOptions | None = None,
    *,
    timings: Timings | None = None,
    features_dir: str | os.PathLike | None = None,
    notices: list[str] | None = None,
) -> VideoEvents:
    """Finds and describes the events of one video file.

    Args:
        model: a DenseVideoModel from ``load_model``, or an Ensemble.
        video: path of the video file.
        options: decoding and filtering options.
        timings: if given, stage times are added to it.
        features_dir: a FEATURES directory with streams precomputed for this video
            (by file stem), read instead of extracted: the way in for features
            densevid cannot compute (TSP, C3D, I3D...).
        notices: if given, receives the line of a warning about the video (the
            HTML report shows it).

    Returns:
        the video's events, sorted by start, with scores; ``duration`` is the video's.

    Warns:
        OutOfDomainWarning: once, when the video's features lie far outside those
            the model was trained on.
    """
    options = (options or CaptionOptions()).verify()
    path = Path(video)
    tic = time.perf_counter()
    info = probe(path)
    raw: dict[str, np.ndarray] = {}
    streams, duration = extract_streams(
        model,
        path,
        info.duration,
        allow_partial=options.allow_partial,
        features_dir=features_dir,
        raw=raw,
    )
    info = replace(info, duration=duration)
    warn_out_of_domain(model, path, raw, notices)
    toc = time.perf_counter()
    video_id = path.stem
    events: list[Event] = []
    for start, end in plan_windows(info.duration, window_length(model, options)):
        items = [
            make_item(model.config, model.time_tokenizer, streams, video_id, start, end)
        ]
        batch = to_device(collate(items, model.time_tokenizer.pad_id), model.device)
        if options.proposals is not None:
            (found,) = caption_proposals(
                model, batch, options.proposals, options.decoding
            )
        else:
            (found,) = decode(model, batch, options.decoding)
        events += [replace(e, start=e.start + start, end=e.end + start) for e in found]
    events = merge_events(events)
    events = filter_events(events, options, info.duration)
    if timings is not None:
        timings.decode_and_features += toc - tic
        timings.generation += time.perf_counter() - toc
        timings.n_videos += 1
        timings.video_seconds += info.duration
    return VideoEvents(video_id, tuple(events), info.duration).sorted()


def extract_streams(
    model: Decodable,
    path: Path,
    duration: float,
    *,
    allow_partial: bool = False,
    features_dir: str | os.PathLike | None = None,
    raw: dict[str, np.ndarray] | None = None,
) -> tuple[dict[str, Any], float]:
    """Runs the extractors the model reads, with the options it was trained with,
    or reads a stream precomputed for this video from ``features_dir`` (the only
    way in for features densevid cannot compute, such as TSP or I3D).

    Returns the streams and the video's duration: ``duration``, or the part that
    could be decoded of a truncated video (``allow_partial``; refused otherwise).
    ``raw``, when given, receives each dense stream's rows with all their blocks,
    before the model's are selected (the domain check reads them).
    """
    cfg = model.config
    names = list(cfg.visual_streams)
    if cfg.use_audio:
        names.append(cfg.audio_features)
    if cfg.use_speech:
        names.append(cfg.speech_features)
    streams: dict[str, Any] = {}
    for name in names:
        if features_dir is not None and has_features(features_dir, name, path.stem):
            result, decoded = read_precomputed(features_dir, name, path.stem), None
        else:
            extractor = get_extractor_for(name, cfg.extractor_options, features_dir)
            result, decoded = decode_checked(
                lambda extractor=extractor: extractor(path),
                path,
                allow_partial=allow_partial,
            )
        if decoded is not None:
            duration = min(duration, decoded)
        if result.is_speech:
            streams[name] = result.segments
        else:
            array = np.asarray(result.array)
            if array.dtype != np.uint8:  # raw frames stay uint8
                array = array.astype(np.float32)
            if raw is not None:
                raw[name] = array
            if name == cfg.visual_features:  # one stream: its blocks
                array = select_blocks(array, result.meta, cfg.visual_blocks, name)
            streams[name] = (array, row_times(result.meta, len(array), duration))
    if len(cfg.visual_streams) > 1:
        parts = [streams.pop(name) for name in cfg.visual_streams]
        streams[cfg.visual_features] = join_streams(parts)
    return streams, duration


def check_domain(config: Any, raw: Mapping[str, np.ndarray]) -> DomainCheck | None:
    """A video's distance from the training features against the model's threshold
    (``densevid.domain``); None when the model has no statistics (saved before the
    check) or the stream has another dimension than they do."""
    stats = DomainStats.from_dict(getattr(config, "domain_stats", None) or {})
    if stats is None:
        return None
    array = raw.get(stats.features or config.visual_streams[0])
    return None if array is None else check_video(array, stats)


def warn_out_of_domain(
    model: Decodable,
    path: Path,
    raw: Mapping[str, np.ndarray],
    notices: list[str] | None = None,
) -> None:
    """One ``OutOfDomainWarning`` when the video is unlike the training videos, so
    that a fluent caption of the wrong world is not taken at its word."""
    found = check_domain(model.config, raw)
    if found is None:
        return
    logger.debug(
        "%s: %.4f of its feature values outside the training range (threshold %.4f)",
        path,
        found.distance,
        found.threshold,
    )
    if found.out_of_domain:
        message = domain_message(str(path))
        warnings.warn(message, OutOfDomainWarning, stacklevel=3)
        if notices is not None:
            notices.append(message)


def get_extractor_for(
    name: str,
    options: dict[str, dict[str, Any]],
    features_dir: str | os.PathLike | None,
) -> Extractor:
    """The extractor of a stream the model reads, built with its training options;
    for a stream densevid cannot compute, one line saying how to give it."""
    if name not in available_extractors():
        where = f"in {features_dir} " if features_dir is not None else ""
        raise DensevidError(
            f"the model reads '{name}' features, which densevid cannot compute from "
            f"a video and found none {where}for it: give them precomputed with "
            f"--features DIR (DIR/{name}/<video>.npy, as 'densevid import' writes)"
        )
    return get_extractor(name, **options.get(name, {}))


def read_precomputed(
    features_dir: str | os.PathLike, name: str, video_id: str
) -> FeatureResult:
    """A stream of the feature cache, as its extractor would have returned it."""
    npy, sidecar = feature_paths(features_dir, name, video_id)
    if not npy.exists():
        segments = load_speech(features_dir, name, video_id)
        return FeatureResult(
            load_speech_meta(features_dir, name, video_id), None, segments
        )
    array, meta = load_features(features_dir, name, video_id)
    return FeatureResult(meta, np.asarray(array, dtype=np.float32))


def window_length(model: Decodable, options: CaptionOptions) -> float:
    if options.window is not None:
        return options.window
    return float(getattr(model.config, "max_duration", 0.0) or 0.0)


def plan_windows(duration: float, window: float) -> list[tuple[float, float]]:
    """[start, end] windows covering the video; one window unless it is longer than
    ``window`` by more than the overlap (0 turns windows off)."""
    if window <= 0 or duration <= window * (1 + WINDOW_OVERLAP):
        return [(0.0, duration)]
    stride = window * (1 - WINDOW_OVERLAP)
    n = int(np.ceil((duration - window) / stride)) + 1
    starts = np.linspace(0.0, duration - window, n)
    return [(float(s), float(s + window)) for s in starts]


def temporal_iou(a: Event, b: Event) -> float:
    inter = max(0.0, min(a.end, b.end) - max(a.start, b.start))
    union = max(a.end, b.end) - min(a.start, b.start)
    return inter / union if union > 0 else 0.0


def merge_events(events: list[Event], threshold: float = MERGE_TIOU) -> list[Event]:
    """Keeps the best-scored of events that overlap by tIoU >= threshold (greedy
    non-maximum suppression); events without a score rank last."""
    ranked = sorted(events, key=lambda e: -(e.score if e.score is not None else -1e9))
    kept: list[Event] = []
    for e in ranked:
        if all(temporal_iou(e, k) < threshold for k in kept):
            kept.append(e)
    return kept


def filter_events(
    events: list[Event], options: CaptionOptions, duration: float
) -> list[Event]:
    out = []
    for e in events:
        e = replace(e, start=min(e.start, duration), end=min(e.end, duration))
        if e.length < options.min_length or e.length <= 0:
            continue
        if options.score_threshold is not None and (
            e.score is None or e.score < options.score_threshold
        ):
            continue
        out.append(e)
    if options.max_events is not None:
        out = sorted(out, key=lambda e: -(e.score or -1e9))[: options.max_events]
    return out


def caption_many(
    model: Decodable,
    videos: list[Path],
    out_dir: str | os.PathLike,
    *,
    options: CaptionOptions | None = None,
    formats: str = "json,srt,vtt,html",
    verbose: bool = True,
    features_dir: str | os.PathLike | None = None,
) -> tuple[dict[str, VideoEvents], dict[str, str], Timings]:
    """Captions several videos and writes each one's files; a failing video is
    recorded and the rest go on.

    Returns:
        (video path -> events, video path -> error message, stage timings).
    """
    from tqdm import tqdm

    from densevid.writers import get_writer

    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise DensevidError(
            f"{out_dir}: exists and is not a directory (-o takes a folder)"
        )
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DensevidError(
            f"{out_dir}: cannot create the output directory ({e.strerror})"
        ) from e
    if not os.access(out_dir, os.W_OK):
        raise DensevidError(f"{out_dir}: output directory is not writable")
    writer = get_writer(formats, out_dir)
    stems: dict[str, Path] = {}
    for v in videos:
        if v.stem in stems:
            raise DensevidError(
                f"{v} and {stems[v.stem]} would write the same output files "
                f"({v.stem}.*); caption them into different directories"
            )
        stems[v.stem] = v
    done: dict[str, VideoEvents] = {}
    failed: dict[str, str] = {}
    timings = Timings()
    with torch.inference_mode():
        for v in tqdm(videos, desc="caption", unit="video", disable=not verbose):
            try:
                notices: list[str] = []
                events = caption(
                    model,
                    v,
                    options,
                    timings=timings,
                    features_dir=features_dir,
                    notices=notices,
                )
                writer(events, video_path=str(v), notices=notices)
                done[str(v)] = events
            except DensevidError as e:
                message = str(e)
                failed[str(v)] = message if str(v) in message else f"{v}: {message}"
                logger.debug("caption failed: %s", failed[str(v)])
    return done, failed, timings

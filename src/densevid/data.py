"""Datasets for the joint model: annotations + cached features -> model inputs.

One item is one video: F frame features sampled uniformly over the whole video (rows
repeated when the video has fewer, so frame slots line up with time tokens), optionally
the audio stream sampled the same way and the speech transcript as time-tokenised
ids, and the target ``<t_s> <t_e> caption ... </s>`` sequence. An optional random
temporal crop (training only) cuts a window out of the video, widened so that it cuts
no event, and makes the window the whole "video", so times stay relative to what the
model sees. An optional horizontal flip (training only, features with a known layout:
``pixels``) mirrors the frame features and swaps "left" and "right" in the captions
and the transcript. An optional concatenation (training only) shows a video followed
by another training video, when both fit in the longest training video: a new
video made of two, with both lists of events, so the model cannot learn a video's
captions by heart from its first frames.

Randomness comes from a generator seeded by (seed, epoch, index), so an item does not
depend on which process loads it or on whether training was resumed.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from densevid.config import ModelConfig
from densevid.errors import DensevidError
from densevid.events import Event, VideoEvents
from densevid.inputs import join_streams, row_times, sample_frames, select_blocks
from densevid.text import TimeTokenizer

logger = logging.getLogger(__name__)

# A cropped event is kept when at least this fraction of it lies inside the window.
CROP_KEEP_FRACTION = 0.5


@dataclass(frozen=True)
class Stream:
    """One dense feature stream of one video: rows and the time of each row (s)."""

    array: np.ndarray  # (T, D)
    times: np.ndarray  # (T,)
    mirrored: np.ndarray | None = None  # (T, D) rows of the flipped video (hflip)


def frame_event_targets(
    spans: Sequence[tuple[float, float]], start: float, end: float, n: int
) -> np.ndarray:
    """(n, 3) targets of the frame-event head for the window [start, end].

    Frame j stands at relative time (j + 0.5) / n (``sample_rows``). Column 0: 1
    where an event covers that time; columns 1, 2: how near the nearest event start /
    end is, exp(-d^2 / 2) with d in frames (1 at a boundary, 0.6 a frame away), so a
    boundary between two frames still teaches both.
    """
    out = np.zeros((n, 3), np.float32)
    length = end - start
    if length <= 0:
        return out
    centre = (np.arange(n) + 0.5) / n
    for a, b in spans:  # event (start, end) in seconds
        s, t = (a - start) / length, (b - start) / length
        out[:, 0] = np.maximum(out[:, 0], (centre >= s) & (centre <= t))
        for col, boundary in ((1, s), (2, t)):
            if 0.0 <= boundary <= 1.0:
                d = (centre - boundary) * n
                out[:, col] = np.maximum(out[:, col], np.exp(-0.5 * d * d))
    return out


MIN_STD = 1e-3  # a feature dimension that barely varies is not blown up


def feature_stats(arrays: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std over the rows of all ``arrays`` ((T, D) each),
    the std floored at ``MIN_STD`` (``ModelConfig.standardize``)."""
    n, total, squares = 0, 0.0, 0.0
    for a in arrays:
        a = np.asarray(a, dtype=np.float64)
        n += a.shape[0]
        total = total + a.sum(0)
        squares = squares + (a * a).sum(0)
    if n == 0:
        raise DensevidError("no feature rows to standardise with")
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean * mean, 0.0))
    return mean.astype(np.float32), np.maximum(std, MIN_STD).astype(np.float32)


def swap_words(text: str, pairs: Mapping[str, str]) -> str:
    """``text`` with each whole word of ``pairs`` (either side) replaced by its
    partner, keeping a capital first letter: "Left, then right." -> "Right, then
    left." for {"left": "right"}."""
    both = {b.lower(): a for a, b in pairs.items()}
    both.update({a.lower(): b for a, b in pairs.items()})
    if not both:
        return text
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, both)) + r")\b", re.I)

    def swap(m: re.Match[str]) -> str:
        word = both[m.group(0).lower()]
        return word[:1].upper() + word[1:] if m.group(0)[0].isupper() else word

    return pattern.sub(swap, text)


def widen_to_whole_events(
    events: Sequence[Event], start: float, end: float
) -> tuple[float, float]:
    """The smallest window holding [start, end] that cuts no event in two.

    A crop through an event would teach a boundary where the window, not the event,
    ends (and drop events the model half sees); widening keeps every event either
    whole inside or wholly outside.
    """
    moved = True
    while moved:
        moved = False
        for e in events:
            if e.start < start < e.end:
                start, moved = e.start, True
            if e.start < end < e.end:
                end, moved = e.end, True
    return start, end


def crop_events(events: Sequence[Event], start: float, end: float) -> list[Event]:
    """Events shifted into the window [start, end], clipped to it; those with less
    than CROP_KEEP_FRACTION of their length inside are dropped."""
    kept = []
    for e in events:
        s, t = max(e.start, start), min(e.end, end)
        if t <= s:
            continue
        if e.length > 0 and (t - s) / e.length < CROP_KEEP_FRACTION:
            continue
        kept.append(Event(s - start, t - start, e.text))
    return kept


class VideoDataset(torch.utils.data.Dataset):
    """Annotated videos read from a feature cache (``FEATURES/<extractor>/...``).

    Args:
        videos: video id -> VideoEvents (with duration), e.g. from load_annotations.
        features_root: the FEATURES directory.
        config: the model's input contract (extractor names, F, token caps).
        time_tokenizer: turns events and transcripts into ids.
        crop: random temporal crops (training).
        crop_min_fraction: the shortest window as a fraction of the video.
        hflip: probability of showing an item mirrored left-right (training).
        hflip_words: words swapped in the text of a mirrored item (both ways).
        concat: probability of showing a video followed by another one (training),
            when the two fit in the longest video's duration.
        seed: base seed of the per-item generators.
        cache: keep loaded feature arrays in memory (small corpora).
    """

    def __init__(
        self,
        videos: Mapping[str, VideoEvents],
        features_root: str | os.PathLike,
        config: ModelConfig,
        time_tokenizer: TimeTokenizer,
        *,
        crop: bool = False,
        crop_min_fraction: float = 0.5,
        hflip: float = 0.0,
        hflip_words: Mapping[str, str] | None = None,
        concat: float = 0.0,
        seed: int = 0,
        cache: bool = True,
    ) -> None:
        if not videos:
            raise DensevidError("dataset has no videos")
        if not 0 < crop_min_fraction <= 1:
            raise DensevidError(
                f"crop_min_fraction must be in (0, 1], got {crop_min_fraction}"
            )
        self.videos = list(videos.values())
        for v in self.videos:
            if v.duration is None:
                raise DensevidError(f"{v.video_id}: the dataset needs video durations")
        self.root = features_root
        self.config = config
        self.tt = time_tokenizer
        self.crop = crop
        self.crop_min_fraction = crop_min_fraction
        if not 0.0 <= hflip <= 1.0:
            raise DensevidError(f"hflip must be a probability in [0, 1], got {hflip}")
        self.hflip = hflip
        self.hflip_words = dict(hflip_words or {})
        if not 0.0 <= concat <= 1.0:
            raise DensevidError(f"concat must be a probability in [0, 1], got {concat}")
        if concat > 0 and crop:
            raise DensevidError("concat and crop cannot be combined: choose one")
        if hflip > 0 and len(config.visual_streams) > 1:
            raise DensevidError(
                "hflip mirrors one pixels stream; the model reads several "
                f"({config.visual_features}): set hflip=0"
            )
        self.concat = concat
        self.durations = np.array([float(v.duration) for v in self.videos])
        self.seed = seed
        self.epoch = 0
        self._cache: dict[tuple[str, str], Any] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.videos)

    def set_epoch(self, epoch: int) -> None:
        """Changes the random crops from epoch to epoch (DistributedSampler's idiom)."""
        self.epoch = epoch

    def feature_dim(self, extractor: str) -> int:
        """Dimension of an extractor's features, read from the first video."""
        return int(self._stream(extractor, self.videos[0]).array.shape[1])

    def extractor_options(self) -> dict[str, dict[str, Any]]:
        """The options each stream's features were extracted with (their sidecars'
        ``config``), read from the first video."""
        from densevid.features.cache import load_features, load_speech_meta

        cfg, video_id = self.config, self.videos[0].video_id
        options = {}
        for name in [*cfg.visual_streams, cfg.audio_features if cfg.use_audio else ""]:
            if name:
                options[name] = load_features(self.root, name, video_id)[1].get(
                    "config", {}
                )
        if cfg.use_speech:
            meta = load_speech_meta(self.root, cfg.speech_features, video_id)
            options[cfg.speech_features] = meta.get("config", {})
        return options

    def check_options(self, model_config: Any) -> None:
        """Compares the features' extractor options with those the model was trained
        on (``ModelConfig.extractor_options``): an error naming the differing options
        when they change the dimension the model reads, a warning otherwise."""
        from densevid.features.registry import option_differences

        found = self.extractor_options()
        dims = {
            model_config.visual_features: model_config.input_dim,
            model_config.audio_features: model_config.audio_dim,
        }
        for name, trained in model_config.extractor_options.items():
            if name not in found:
                continue
            labels = ("in the features", "for the model")
            diff = option_differences(name, found[name], trained, labels)
            if not diff:
                continue
            msg = (
                f"{self.root}/{name} was extracted with other options than the model "
                f"was trained on ({'; '.join(diff)})"
            )
            if dims.get(name) and self.feature_dim(name) != dims[name]:
                raise DensevidError(
                    f"{msg}: extract the videos again with the model's options"
                )
            logger.warning(msg)

    def _stream(self, extractor: str, video: VideoEvents) -> Stream:
        from densevid.features.cache import load_features

        key = (extractor, video.video_id)
        if self._cache is not None and key in self._cache:
            return self._cache[key]
        if "," in extractor:  # several visual streams read as one (join_streams)
            parts = [self._stream(name, video) for name in extractor.split(",")]
            array, times = join_streams([(p.array, p.times) for p in parts])
            return Stream(array, times)
        # raw frames are mapped, not read: the OS page cache holds them once for
        # every data-loader worker and every run on the same machine
        mmap = extractor == "frames"
        array, meta = load_features(self.root, extractor, video.video_id, mmap=mmap)
        mirrored = None
        if extractor == self.config.visual_features:
            where = f"{self.root}/{extractor}"
            if self.hflip > 0 and not self.config.reads_frames:
                mirrored = select_blocks(
                    mirror_features(array, meta, where),
                    meta,
                    self.config.visual_blocks,
                    where,
                )
            array = select_blocks(array, meta, self.config.visual_blocks, where)
        stream = Stream(
            np.asarray(
                array, dtype=np.uint8 if array.dtype == np.uint8 else np.float32
            ),
            row_times(meta, array.shape[0], float(video.duration)),
            mirrored,
        )
        if self._cache is not None:
            self._cache[key] = stream
        return stream

    def input_stats(self, extractor: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of one stream's rows over every video (``feature_stats``)."""
        return feature_stats(self._stream(extractor, v).array for v in self.videos)

    def _speech(self, video: VideoEvents) -> list[dict[str, Any]]:
        from densevid.features.cache import load_speech

        key = (self.config.speech_features, video.video_id)
        if self._cache is not None and key in self._cache:
            return self._cache[key]
        speech = load_speech(self.root, self.config.speech_features, video.video_id)
        if self._cache is not None:
            self._cache[key] = speech
        return speech

    def window(self, index: int) -> tuple[float, float]:
        """The [start, end] seconds this item shows: the whole video unless cropping."""
        duration = float(self.videos[index].duration)
        if not self.crop:
            return 0.0, duration
        rng = np.random.default_rng([self.seed, self.epoch, index])
        length = duration * rng.uniform(self.crop_min_fraction, 1.0)
        start = rng.uniform(0.0, duration - length)
        events = self.videos[index].events
        start, end = widen_to_whole_events(events, start, start + length)
        return float(max(start, 0.0)), float(min(end, duration))

    def flipped(self, index: int) -> bool:
        """Whether this item shows the video mirrored (``hflip``), per epoch."""
        if self.hflip <= 0:
            return False
        rng = np.random.default_rng([self.seed, self.epoch, index, 1])
        return bool(rng.random() < self.hflip)

    def partner(self, index: int) -> int | None:
        """The video shown after this one (``concat``), per epoch; None when none is
        (most items, or no other video fits in the longest video's duration)."""
        if self.concat <= 0:
            return None
        rng = np.random.default_rng([self.seed, self.epoch, index, 2])
        if rng.random() >= self.concat:
            return None
        room = self.durations.max() - self.durations[index]
        fits = np.flatnonzero(self.durations <= room + 1e-6)
        fits = fits[fits != index]
        return int(fits[rng.integers(len(fits))]) if len(fits) else None

    def __getitem__(self, index: int) -> dict[str, Any]:
        video = self.videos[index]
        cfg = self.config
        start, end = self.window(index)
        flip = self.flipped(index)
        parts = [video]
        other = self.partner(index)
        if other is not None:
            parts.append(self.videos[other])
        offsets = np.cumsum([0.0] + [float(v.duration) for v in parts[:-1]])
        events = [
            Event(e.start + offset, e.end + offset, e.text)
            for v, offset in zip(parts, offsets, strict=True)
            for e in v.events
        ]
        if flip:
            events = [
                Event(e.start, e.end, swap_words(e.text, self.hflip_words))
                for e in events
            ]
        if self.crop:
            cropped = crop_events(events, start, end)
            if cropped:
                events = cropped
            else:  # nothing survives this window: show the whole video instead
                start, end = 0.0, float(video.duration)
        if other is not None:
            end = float(offsets[-1] + parts[-1].duration)
        duration = end - start
        item: dict[str, Any] = {"video_id": video.video_id, "duration": duration}
        visual = self._joined(cfg.visual_features, parts, offsets, flip)
        item["visual"] = sample_frames(
            visual.array, visual.times, start, end, cfg.n_frames,
            cfg.interpolates,
        )  # fmt: skip
        if flip and cfg.reads_frames:  # raw frames: flip the sampled ones, no copy
            from densevid.features.frames import mirror_frame_rows

            item["visual"] = mirror_frame_rows(item["visual"], cfg.frame_shape)
        if cfg.use_audio:
            audio = self._joined(cfg.audio_features, parts, offsets, False)
            item["audio"] = sample_frames(
                audio.array, audio.times, start, end, cfg.n_audio_frames,
                cfg.interpolate_frames,
            )  # fmt: skip
        if cfg.use_speech:
            speech = [
                dict(s, start=s["start"] + offset, end=s["end"] + offset)
                for v, offset in zip(parts, offsets, strict=True)
                for s in self._speech(v)
            ]
            if flip:
                speech = [
                    dict(s, text=swap_words(str(s["text"]), self.hflip_words))
                    for s in speech
                ]
            if self.crop:
                speech = [
                    {"start": e.start, "end": e.end, "text": e.text}
                    for e in crop_events(
                        [
                            Event(s["start"], s["end"], s["text"])
                            for s in speech
                            if s["end"] >= s["start"]
                        ],
                        start,
                        end,
                    )
                ]
            item["speech_ids"] = self.tt.encode_speech(
                speech, duration, cfg.max_speech_tokens
            )
        item["labels"] = self.tt.encode_events(
            events, duration, max_length=cfg.max_target_tokens
        )
        if cfg.frame_events:
            item["frame_targets"] = frame_event_targets(
                [(e.start, e.end) for e in events], start, end, cfg.n_frames
            )
        return item

    def _joined(
        self,
        extractor: str,
        parts: Sequence[VideoEvents],
        offsets: np.ndarray,
        flip: bool,
    ) -> Stream:
        """One stream of the videos shown one after the other (rows and times)."""
        streams = [self._stream(extractor, v) for v in parts]
        arrays = [
            s.mirrored if flip and s.mirrored is not None else s.array for s in streams
        ]
        if len(parts) == 1:
            return Stream(arrays[0], streams[0].times)
        times = [s.times + offset for s, offset in zip(streams, offsets, strict=True)]
        return Stream(np.concatenate(arrays), np.concatenate(times))


def mirror_features(
    array: np.ndarray, meta: Mapping[str, Any], where: str
) -> np.ndarray:
    """The rows of the left-right mirrored video (``pixels.mirror_rows``); only
    features whose sidecar describes their layout (``pixels``) can be mirrored."""
    from densevid.features.pixels import mirror_rows

    if meta.get("extractor") != "pixels" or not meta.get("layout"):
        raise DensevidError(
            f"{where}: hflip needs pixels features (others cannot be mirrored "
            "without re-extracting the flipped video)"
        )
    return mirror_rows(array, meta["layout"])

"""Video decoding on PyAV: probe, frames at a rate or uniformly, audio at 16 kHz.

Sampling a few frames from a long video must not decode all of it: ``read_frames``
looks up the key frames in the container's index and, when the next wanted frame lies
past a key frame not yet reached, seeks to that key frame and decodes forward from
there; dense sampling decodes straight through. Where the container has no index
(MPEG-TS, some WebM), it learns the key-frame spacing while decoding and seeks when the
gap to the next wanted frame is longer than that.

Frames are returned as displayed: rotation metadata (the display matrix phones write)
is applied, so a portrait phone video comes out portrait.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import av
import av.error
import numpy as np

from densevid.errors import DensevidError

logger = logging.getLogger(__name__)

T = TypeVar("T")

SAMPLE_RATE = 16000  # Hz, the audio rate every speech and audio model here expects
# Never seek for a gap shorter than this (s): decoding forward is cheaper.
SEEK_MIN_GAP_S = 0.5
# Key-frame spacing assumed before any is seen, for containers without an index (s).
DEFAULT_GOP_S = 2.0
# A video whose decodable frames end this much before its declared end is truncated.
TRUNCATION_TOLERANCE_S = 1.0
# Frame times within this of a target count as "at" the target (s).
TIME_EPS_S = 1e-6
# Skip non-reference frames until this close to a target (s); see _Cursor.
NONREF_MARGIN_S = 1.0
# Index times are decode times; display times of key frames can be later by this (s).
INDEX_SLACK_S = 0.25
# Re-seek tries, each starting earlier, when a seek lands after the wanted frame.
MAX_SEEK_RETRIES = 4
INTERPOLATION = "AREA"  # swscale filter: area averaging avoids aliasing when shrinking


class NoAudioError(DensevidError):
    """The video has no audio stream (normal for many videos; callers may skip)."""


class TruncatedVideoWarning(UserWarning):
    """The decodable part of a file ends before the end its container declares.

    ``read_frames`` and ``read_audio`` return what they could decode with this
    warning; ``decode_checked`` turns it into ``TruncatedVideoError`` unless the
    caller allows partial videos.
    """

    def __init__(self, message: str, decoded_s: float, declared_s: float) -> None:
        super().__init__(message)
        self.decoded_s = decoded_s  # seconds that could be decoded
        self.declared_s = declared_s  # seconds the container declares


class TruncatedVideoError(DensevidError):
    """A truncated or damaged video refused, since its events would be made up."""


class VideoDecodeError(DensevidError):
    """The file is missing, not a video, or has no decodable frames."""


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` learns about a video without decoding it all.

    ``width``/``height`` are the displayed size (after ``rotation``); ``rotation`` is
    the counter-clockwise turn in degrees (0, 90, 180, 270) applied to stored frames
    for display. ``n_frames`` is the container's frame count, None when it has none.
    """

    path: str
    duration: float  # s
    fps: float  # average frame rate
    width: int
    height: int
    rotation: int
    n_frames: int | None
    has_audio: bool
    audio_sample_rate: int | None
    codec: str = ""
    coded_width: int = 0
    coded_height: int = 0


def probe(path: str | os.PathLike) -> VideoInfo:
    """Duration, frame rate, displayed size, rotation and audio of a video.

    Decodes only the first frame (to read the rotation and check that frames decode).

    Raises:
        VideoDecodeError: the path does not exist, is not a video, or has no frames.
    """
    with _open(path) as container:
        return _probe_container(container, str(path))


def read_frames(
    path: str | os.PathLike,
    *,
    fps: float | None = None,
    n_frames: int | None = None,
    size: int | tuple[int, int] | None = None,
    crop: bool = False,
    exact: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Decodes frames as RGB arrays, sampled in time and resized on the way.

    Args:
        path: the video file.
        fps: frames at this rate: the frame shown at t = 0, 1/fps, ... < duration.
        n_frames: this many frames uniformly over the whole video, the frame shown at
            the centre of each of ``n_frames`` equal bins (repeats frames when the
            video has fewer). Neither ``fps`` nor ``n_frames``: every frame.
        size: an int makes the shorter side this long, keeping the aspect ratio;
            ``(width, height)`` resizes to exactly that; None keeps the size.
        crop: with an int ``size``, centre-crop to a ``size`` x ``size`` square.
        exact: True: the frame on screen at each target time. False: the key frame
            at or before it (``times`` say which), decoding key frames only: many
            times faster for a few frames from a long video with long key-frame
            intervals, where exact sampling must decode from each key frame on.

    Returns:
        frames: (N, H, W, 3) uint8 RGB, as displayed (rotation applied).
        times: (N,) float64, the presentation time in seconds of each frame
            returned (from the start of the video).

    Raises:
        VideoDecodeError: missing file, not a video, or no decodable frames.
        DensevidError: bad arguments.

    A truncated file yields the frames before the damage, with a warning.
    """
    if fps is not None and n_frames is not None:
        raise DensevidError("read_frames: give fps or n_frames, not both")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise DensevidError(f"read_frames: fps must be > 0, got {fps}")
    if n_frames is not None and (isinstance(n_frames, bool) or n_frames < 1):
        raise DensevidError(f"read_frames: n_frames must be >= 1, got {n_frames}")
    if crop and not isinstance(size, int):
        raise DensevidError("read_frames: crop=True needs an int size (the square)")
    _check_size(size)

    with _open(path, thread_type="AUTO" if exact else "SLICE") as container:
        info = _probe_container(container, str(path))
        stream = container.streams.video[0]
        out_w, out_h, crop_to = _output_geometry(info, size, crop)
        convert = _Converter(info.rotation, out_w, out_h, crop_to)
        if fps is None and n_frames is None:
            frames, times, complete = _decode_all(
                container, stream, info, convert, exact
            )
        else:
            if n_frames is not None:
                targets = (np.arange(n_frames) + 0.5) * info.duration / n_frames
            else:
                n = max(1, math.ceil(info.duration * fps - TIME_EPS_S))
                targets = np.arange(n) / fps
            frames, times, complete = _decode_at(
                container, stream, info, targets, convert, exact
            )
        if not frames:
            raise VideoDecodeError(f"{path}: no decodable video frames")
        if not complete:
            last = times[-1] if times else 0.0
            period = 1.0 / info.fps if info.fps else 0.0
            warnings.warn(
                TruncatedVideoWarning(
                    f"{path}: truncated or damaged, decoded frames up to {last:.2f} s "
                    f"of {info.duration:.2f} s; returning {len(frames)} frames",
                    decoded_s=min(last + period, info.duration),
                    declared_s=info.duration,
                ),
                stacklevel=2,
            )
        arrays = np.stack(frames)
    return arrays, np.asarray(times, dtype=np.float64)


def read_audio(
    path: str | os.PathLike, *, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """The first audio stream, resampled to mono ``sample_rate`` Hz.

    Returns:
        (S,) float32 in [-1, 1].

    Raises:
        NoAudioError: the file has no audio stream.
        VideoDecodeError: missing or unreadable file.
    """
    if sample_rate <= 0:
        raise DensevidError(f"read_audio: sample_rate must be > 0, got {sample_rate}")
    with _open(path, need_video=False) as container:
        if not container.streams.audio:
            raise NoAudioError(f"{path}: has no audio stream")
        stream = container.streams.audio[0]
        declared = float(container.duration or 0) / av.time_base
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        damaged = None
        try:
            for frame in container.decode(stream):
                frame.pts = None  # resample by order, not by (possibly broken) times
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as e:
            damaged = e
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if damaged is not None:
        decoded = len(audio) / sample_rate
        warnings.warn(
            TruncatedVideoWarning(
                f"{path}: audio truncated or damaged after {decoded:.2f} s ({damaged})",
                decoded_s=decoded,
                declared_s=declared or decoded,
            ),
            stacklevel=2,
        )
    return np.clip(audio.astype(np.float32, copy=False), -1.0, 1.0)


def decode_checked(
    decode: Callable[[], T], path: str | os.PathLike, *, allow_partial: bool = False
) -> tuple[T, float | None]:
    """Runs ``decode`` (something that reads ``path``) under densevid's rule for
    damaged files: a file whose decodable part ends early is refused, since a model
    would describe events in the part that was never seen, unless ``allow_partial``.

    Returns:
        what ``decode`` returned, and the seconds that could be decoded when the
        file is truncated and allowed (None when it is whole).

    Raises:
        TruncatedVideoError: truncated and not allowed; the message says how much
            could be read.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = decode()
    decoded: float | None = None
    declared = 0.0
    for w in caught:
        if isinstance(w.message, TruncatedVideoWarning):
            decoded = min(decoded or math.inf, w.message.decoded_s)
            declared = max(declared, w.message.declared_s)
        else:  # not ours to judge: passed on as it came
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if decoded is None:
        return result, None
    if not allow_partial:
        raise TruncatedVideoError(
            f"{path}: truncated or damaged: only {decoded:.2f} s of its "
            f"{declared:.2f} s can be decoded (--allow-partial uses that part)"
        )
    warnings.warn(
        f"{path}: truncated or damaged: using the {decoded:.2f} s of its "
        f"{declared:.2f} s that can be decoded",
        stacklevel=2,
    )
    return result, decoded


# --- opening and probing -----------------------------------------------------------


def _open(
    path: str | os.PathLike, *, need_video: bool = True, thread_type: str = "AUTO"
) -> av.container.InputContainer:
    p = Path(path)
    if not p.exists():
        raise VideoDecodeError(f"{p}: no such file")
    if p.is_dir():
        raise VideoDecodeError(f"{p}: is a directory, expected a video file")
    try:
        container = av.open(str(p), mode="r")
    except av.error.FFmpegError as e:
        raise VideoDecodeError(
            f"{p}: not a video file, or damaged or truncated beyond reading "
            f"({_reason(e)})"
        ) from e
    except OSError as e:
        raise VideoDecodeError(f"{p}: cannot read ({e.strerror or e})") from e
    if need_video and not container.streams.video:
        container.close()
        raise VideoDecodeError(f"{p}: has no video stream")
    if container.streams.video:
        # before the codec opens: frame threads decode runs of frames fastest; slice
        # threads return a single frame after a seek sooner
        container.streams.video[0].thread_type = thread_type
    if not need_video and not (container.streams.video or container.streams.audio):
        container.close()
        raise VideoDecodeError(f"{p}: has no video or audio stream")
    return container


def _reason(e: Exception) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return str(text).strip() or type(e).__name__


def _probe_container(container: av.container.InputContainer, path: str) -> VideoInfo:
    stream = container.streams.video[0]
    tb = float(stream.time_base) if stream.time_base else 0.0
    start = (stream.start_time or 0) * tb
    duration = None
    if stream.duration and tb:
        duration = stream.duration * tb
    elif container.duration:
        duration = container.duration / av.time_base - start
    rate = stream.average_rate or stream.guessed_rate
    n_frames = stream.frames or None

    first = None
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                first = frame
                break
            if first is not None:
                break
        if first is None:  # frames held back in the decoder
            for frame in stream.codec_context.decode(None):
                first = frame
                break
    except av.error.EOFError:
        pass
    except av.error.FFmpegError as e:
        raise VideoDecodeError(f"{path}: cannot decode video ({_reason(e)})") from e
    if first is None:
        raise VideoDecodeError(f"{path}: no decodable video frames")
    rotation = int(round((first.rotation or 0) / 90.0)) * 90 % 360

    if duration is None or duration <= 0:
        duration = _scan_duration(container, stream, start)
    if not rate:
        rate = n_frames / duration if n_frames and duration else 0.0
    container.seek(0)
    coded_w, coded_h = first.width, first.height
    w, h = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)
    audio = container.streams.audio
    return VideoInfo(
        path=path,
        duration=float(duration),
        fps=float(rate),
        width=w,
        height=h,
        rotation=rotation,
        n_frames=n_frames,
        has_audio=bool(audio),
        audio_sample_rate=(audio[0].rate or None) if audio else None,
        codec=stream.codec_context.name,
        coded_width=coded_w,
        coded_height=coded_h,
    )


def _scan_duration(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    start: float,
) -> float:
    """End of the last packet, for containers that declare no duration."""
    tb = float(stream.time_base)
    end = 0.0
    container.seek(0)
    try:
        for packet in container.demux(stream):
            if packet.pts is not None:
                end = max(end, (packet.pts + (packet.duration or 0)) * tb - start)
    except av.error.FFmpegError:
        pass
    return end if end > 0 else TIME_EPS_S


# --- decoding ----------------------------------------------------------------------


def _frame_time(frame: av.VideoFrame, start: float) -> float:
    t = frame.time
    return 0.0 if t is None else t - start


def _stream_start(stream: av.video.stream.VideoStream) -> float:
    return (stream.start_time or 0) * float(stream.time_base or 0)


def _frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    damage: list[str] | None = None,
) -> Iterator[av.VideoFrame]:
    """Decoded frames from the current position. At damage, drains the frames the
    decoder still holds, notes the error in ``damage`` and stops."""
    try:
        yield from container.decode(stream)
    except av.error.FFmpegError as e:
        logger.debug("decoding stopped: %s", e)
        if damage is not None:
            damage.append(_reason(e))
        with contextlib.suppress(av.error.FFmpegError):
            yield from stream.codec_context.decode(None)


def _decode_all(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    info: VideoInfo,
    convert: _Converter,
    exact: bool = True,
) -> tuple[list[np.ndarray], list[float], bool]:
    start = _stream_start(stream)
    if not exact:
        stream.codec_context.skip_frame = "NONKEY"
    frames, times = [], []
    damage: list[str] = []
    for frame in _frames(container, stream, damage):
        frames.append(convert(frame))
        times.append(_frame_time(frame, start))
    last = times[-1] if times else 0.0
    period = 1.0 / info.fps if info.fps else 0.0
    complete = not damage and (
        not exact  # key frames only: the last one may be long before the end
        or last + period >= info.duration - max(TRUNCATION_TOLERANCE_S, 3 * period)
    )
    return frames, times, complete


def _keyframe_times(
    stream: av.video.stream.VideoStream, start: float, duration: float
) -> np.ndarray:
    """Key-frame times (s) from the container index, or empty when the index is
    missing or partial (MPEG-TS indexes only what it has read so far)."""
    tb = float(stream.time_base or 0)
    try:
        entries = list(stream.index_entries)
    except (AttributeError, av.error.FFmpegError):
        return np.zeros(0)
    keys = np.sort([e.timestamp * tb - start for e in entries if e.is_keyframe])
    covers = len(keys) >= 2 and keys[-1] >= duration / 2
    if not covers and not (
        len(keys) == 1 and stream.frames and len(entries) >= stream.frames
    ):
        return np.zeros(0)
    return keys.astype(np.float64)


class _Cursor:
    """A decoding position that can seek to a key frame or move forward."""

    def __init__(
        self, container, stream, start: float, *, exact: bool, fps: float
    ) -> None:
        self.container = container
        self.stream = stream
        self.start = start
        self.exact = exact
        # Frames still in the decoder when the skip mode changes (frame threads and
        # B-frame reordering) come out under the old mode: stay this far ahead (s).
        threads = stream.codec_context.thread_count or os.cpu_count() or 1
        self.margin = max(NONREF_MARGIN_S, (threads + 4) / fps if fps else math.inf)
        self.skip = ""
        self._set_skip("DEFAULT" if exact else "NONKEY")
        self.landing = -math.inf  # where the last seek should land (index), s
        self.it: Iterator[av.VideoFrame] | None = None
        self.prev: av.VideoFrame | None = None  # last frame at or before the target
        self.prev_time = -math.inf
        self.pending: av.VideoFrame | None = None  # first frame after the target
        self.exhausted = False
        self.damage: list[str] = []
        self.n_decoded = 0
        self.n_seeks = 0

    def _next(self) -> av.VideoFrame | None:
        if self.pending is not None:
            f, self.pending = self.pending, None
            return f
        assert self.it is not None
        f = next(self.it, None)
        if f is None:
            self.exhausted = True
        else:
            self.n_decoded += 1
        return f

    def restart(self, at: float, landing: float = -math.inf) -> None:
        self.n_seeks += 1
        self.landing = landing
        tb = float(self.stream.time_base)
        offset = int(math.floor((max(at, 0.0) + self.start) / tb))
        self.container.seek(offset, backward=True, stream=self.stream)
        self.it = _frames(self.container, self.stream, self.damage)
        self.prev, self.prev_time, self.pending = None, -math.inf, None
        self.exhausted = False

    def from_beginning(self) -> None:
        self.landing = 0.0
        self.container.seek(0)
        self.it = _frames(self.container, self.stream, self.damage)
        self.prev, self.prev_time, self.pending = None, -math.inf, None
        self.exhausted = False

    def _set_skip(self, mode: str) -> None:
        if mode != self.skip:
            self.stream.codec_context.skip_frame = mode
            self.skip = mode

    def advance(self, t: float) -> av.VideoFrame | None:
        """The frame shown at time t: the last one starting at or before t.

        Exact mode skips decoding frames no other frame refers to while still well
        before t (they cannot be the answer), which halves the work on typical
        H.264; key-frame mode (not exact) decodes key frames only.
        """
        if self.exact:
            here = self.prev_time if self.prev is not None else self.landing
            self._set_skip("NONREF" if here < t - self.margin else "DEFAULT")
        while True:
            f = self._next()
            if f is None:
                break
            ft = _frame_time(f, self.start)
            if self.exact and self.skip == "NONREF" and ft >= t - self.margin:
                self._set_skip("DEFAULT")
            if ft <= t + TIME_EPS_S:
                self.prev, self.prev_time = f, ft
            else:
                self.pending = f
                break
        return self.prev if self.prev is not None else self.pending

    def seek_to(self, t: float, keys: np.ndarray) -> av.VideoFrame | None:
        """Seeks before t and decodes forward to it, seeking earlier if the
        demuxer landed on a key frame after t (B-frame reordering, loose indexes)."""
        back = 0.0
        for _ in range(MAX_SEEK_RETRIES):
            # the index gives decode times, a few frames before display times
            landing = _key_before(keys, t - back) + INDEX_SLACK_S if len(keys) else t
            self.restart(t - back, landing)
            frame = self.advance(t)
            if self.prev is not None or t - back <= 0:
                return frame
            back = max(1.0, 2 * back)
        self.from_beginning()
        return self.advance(t)


def _decode_at(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    info: VideoInfo,
    targets: np.ndarray,
    convert: _Converter,
    exact: bool = True,
) -> tuple[list[np.ndarray], list[float], bool]:
    """The frame shown at each (ascending) target time, seeking where it pays."""
    start = _stream_start(stream)
    keys = _keyframe_times(stream, start, info.duration)
    if not exact and len(keys):
        return _decode_key_frames(container, stream, info, targets, convert, keys)
    cursor = _Cursor(container, stream, start, exact=exact, fps=info.fps)
    period = 1.0 / info.fps if info.fps else 0.0
    gop = DEFAULT_GOP_S  # learned key-frame spacing, used when there is no index
    last_key = None
    frames, times = [], []
    complete = True
    for t in targets:
        if cursor.it is None:
            seek = t > SEEK_MIN_GAP_S and (not len(keys) or _key_before(keys, t) > 0)
        elif cursor.exhausted and cursor.pending is None:
            seek = False
        elif len(keys):
            seek = (
                t - cursor.prev_time > SEEK_MIN_GAP_S
                and _key_before(keys, t) > cursor.prev_time + TIME_EPS_S
            )
        else:
            seek = t - cursor.prev_time > max(SEEK_MIN_GAP_S, gop)
        if seek:
            frame = cursor.seek_to(t, keys)
            if cursor.prev is not None and not len(keys):
                # where the seek landed bounds the key-frame spacing from below
                landed = _frame_time(cursor.prev, start)
                gop = max(gop, t - landed)
        else:
            if cursor.it is None:
                cursor.from_beginning()
            frame = cursor.advance(t)
        if cursor.prev is not None and cursor.prev.key_frame and not len(keys):
            kt = cursor.prev_time
            if last_key is not None and kt > last_key:
                gop = max(gop, kt - last_key)
            last_key = kt
        if frame is None:
            complete = False
            break
        ft = _frame_time(frame, start)
        if cursor.exhausted and cursor.pending is None:
            # past the last frame: fine at the end of the video, not in a truncated one
            # (key frames only: the last key frame may be long before the end)
            ends_early = exact and cursor.prev_time + period < info.duration - max(
                TRUNCATION_TOLERANCE_S, 3 * period
            )
            if (cursor.damage or ends_early) and t > ft + period + TIME_EPS_S:
                complete = False
                break
        frames.append(convert(frame))
        times.append(ft)
    logger.debug(
        "sampled %d frames: decoded %d, %d seeks",
        len(frames),
        cursor.n_decoded,
        cursor.n_seeks,
    )
    return frames, times, complete


def _decode_key_frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    info: VideoInfo,
    targets: np.ndarray,
    convert: _Converter,
    keys: np.ndarray,
) -> tuple[list[np.ndarray], list[float], bool]:
    """The key frame at or before each target, from the index: one seek and one
    decoded frame per distinct key frame, nothing else read."""
    start = _stream_start(stream)
    cursor = _Cursor(container, stream, start, exact=False, fps=info.fps)
    cursor._set_skip("DEFAULT")  # the first frame after a seek is the key frame;
    # skipping non-key frames would only make the decoder read further for it
    frames, times = [], []
    complete = True
    for t in targets:
        k = _key_before(keys, t)
        if cursor.prev is None or k > cursor.prev_time + INDEX_SLACK_S:
            cursor.restart(t)
            f = cursor._next()
            if f is not None and _frame_time(f, start) <= t + TIME_EPS_S:
                cursor.prev, cursor.prev_time = f, _frame_time(f, start)
            else:  # landed after t, or nothing there: the general path
                cursor.pending = f
                if cursor.seek_to(t, keys) is None or cursor.prev is None:
                    complete = not cursor.damage and f is not None
                    break
        frames.append(convert(cursor.prev))
        times.append(cursor.prev_time)
    logger.debug("sampled %d key frames, %d seeks", len(frames), cursor.n_seeks)
    return frames, times, complete


def _key_before(keys: np.ndarray, t: float) -> float:
    i = int(np.searchsorted(keys, t + TIME_EPS_S, side="right")) - 1
    return float(keys[i]) if i >= 0 else -math.inf


# --- conversion --------------------------------------------------------------------


def _check_size(size: int | tuple[int, int] | None) -> None:
    if size is None:
        return
    if isinstance(size, int) and not isinstance(size, bool):
        if size < 1:
            raise DensevidError(f"read_frames: size must be >= 1, got {size}")
        return
    if (
        isinstance(size, tuple | list)
        and len(size) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size)
    ):
        return
    raise DensevidError(
        f"read_frames: size must be an int (shorter side) or (width, height), "
        f"got {size!r}"
    )


def _output_geometry(
    info: VideoInfo, size: int | tuple[int, int] | None, crop: bool
) -> tuple[int, int, int | None]:
    """Displayed (width, height) to resize to, and the square side to crop to."""
    w, h = info.width, info.height
    if size is None:
        return w, h, None
    if isinstance(size, int):
        if w <= h:
            out_w, out_h = size, max(1, round(h * size / w))
        else:
            out_w, out_h = max(1, round(w * size / h)), size
        return out_w, out_h, size if crop else None
    return int(size[0]), int(size[1]), None


class _Converter:
    """Frame -> (H, W, 3) uint8 RGB as displayed: resized, rotated, cropped.

    Converts as frames are chosen, so memory holds small arrays, never decoded
    frames; a frame chosen twice in a row (more targets than frames) converts once.
    """

    def __init__(self, rotation: int, out_w: int, out_h: int, crop_to: int | None):
        self.k = (rotation // 90) % 4
        # resize the stored frame to the size that becomes (out_w, out_h) once rotated
        self.coded_w, self.coded_h = (out_h, out_w) if self.k % 2 else (out_w, out_h)
        self.crop_to = crop_to
        self.last: av.VideoFrame | None = None
        self.last_array: np.ndarray | None = None

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        if frame is self.last and self.last_array is not None:
            return self.last_array
        img = frame.to_ndarray(
            format="rgb24",
            width=self.coded_w,
            height=self.coded_h,
            interpolation=INTERPOLATION,
        )
        if self.k:
            img = np.rot90(img, k=self.k)
        if self.crop_to is not None:
            c = self.crop_to
            y0 = (img.shape[0] - c) // 2
            x0 = (img.shape[1] - c) // 2
            img = img[y0 : y0 + c, x0 : x0 + c]
        img = np.ascontiguousarray(img)
        self.last, self.last_array = frame, img
        return img

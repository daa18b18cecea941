"""The on-disk feature cache that extraction writes and training reads.

Layout (one directory per extractor, one video per file pair)::

    FEATURES/<extractor>/<video_id>.npy    dense stream, shape [T, D], float16/float32
                                           (uint8 for ``frames``: pixels themselves)
    FEATURES/<extractor>/<video_id>.json   its sidecar: {"extractor", "fps", "dim",
                                           "duration", "n_frames", "timestamps", ...}
    FEATURES/<speech extractor>/<video_id>.json
        speech stream (asr, subtitles), one JSON object: {"extractor",
        "kind": "speech", "duration", "segments": [{"start", "end", "text"}, ...]}

``video_id`` is the video file's stem. ``timestamps[i]`` is the time in seconds of row
``i`` (the frame time for visual streams, the window centre for audio windows).

Crash safety: every file is written to a temporary name in the same directory and
renamed into place, so a reader never sees half a file. For dense streams the array is
written first and the sidecar last, and a stream counts as complete only when both exist
and agree (``has_features``); a run killed between the two leaves an orphan ``.npy``
that the next run overwrites. Speech streams are one JSON file, complete once it exists.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from densevid.atomic import atomic_write
from densevid.errors import DensevidError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
DTYPES = (np.float16, np.float32, np.uint8)
SPEECH_KEYS = ("start", "end", "text")


def feature_paths(
    root: str | os.PathLike, extractor: str, video_id: str
) -> tuple[Path, Path]:
    """(array path, sidecar path) of one video's dense stream."""
    d = _stream_dir(root, extractor, video_id)
    return d / f"{video_id}.npy", d / f"{video_id}.json"


def speech_path(root: str | os.PathLike, extractor: str, video_id: str) -> Path:
    """The JSON file of one video's speech stream."""
    return _stream_dir(root, extractor, video_id) / f"{video_id}.json"


def save_features(
    root: str | os.PathLike,
    extractor: str,
    video_id: str,
    array: np.ndarray,
    meta: Mapping[str, Any],
) -> Path:
    """Writes a dense stream atomically: the array, then its sidecar.

    Args:
        root: the FEATURES directory.
        extractor: registry name, the sub-directory (e.g. "pixels").
        video_id: the video file's stem.
        array: (T, D) float16, float32 or uint8 (other float types are cast to
            float32).
        meta: sidecar fields; must hold "fps" and "duration". "extractor", "dim",
            "n_frames" and "dtype" are filled in from the arguments.

    Returns:
        The path of the ``.npy`` file.
    """
    arr = np.asarray(array)
    if arr.ndim != 2:
        raise DensevidError(
            f"{extractor}/{video_id}: features must have shape [T, D], got {arr.shape}"
        )
    if arr.dtype not in DTYPES:
        if not np.issubdtype(arr.dtype, np.floating):
            raise DensevidError(
                f"{extractor}/{video_id}: features must be float, got {arr.dtype}"
            )
        arr = arr.astype(np.float32)
    for key in ("fps", "duration"):
        if key not in meta:
            raise DensevidError(f"{extractor}/{video_id}: sidecar lacks '{key}'")
    sidecar = dict(meta)
    sidecar.update(
        extractor=extractor,
        dim=int(arr.shape[1]),
        n_frames=int(arr.shape[0]),
        dtype=str(arr.dtype),
        format_version=FORMAT_VERSION,
    )
    ts = sidecar.get("timestamps")
    if ts is not None:
        ts = [float(t) for t in np.asarray(ts, dtype=np.float64).reshape(-1)]
        if len(ts) != arr.shape[0]:
            raise DensevidError(
                f"{extractor}/{video_id}: {len(ts)} timestamps for {arr.shape[0]} rows"
            )
        sidecar["timestamps"] = ts
    npy, js = feature_paths(root, extractor, video_id)
    npy.parent.mkdir(parents=True, exist_ok=True)
    js.unlink(missing_ok=True)  # the sidecar marks completeness: drop it first
    atomic_write(npy, lambda f: np.save(f, arr, allow_pickle=False), binary=True)
    atomic_write(js, lambda f: json.dump(_jsonable(sidecar), f, indent=1))
    return npy


def load_features(
    root: str | os.PathLike, extractor: str, video_id: str, *, mmap: bool = False
) -> tuple[np.ndarray, dict[str, Any]]:
    """Reads a dense stream: ((T, D) array as stored, sidecar dict).

    Raises DensevidError naming the file when it is missing, incomplete or corrupt.
    """
    npy, js = feature_paths(root, extractor, video_id)
    if not js.exists() or not npy.exists():
        missing = js if not js.exists() else npy
        raise DensevidError(
            f"{missing}: no '{extractor}' features for video '{video_id}' "
            f"(run: densevid extract VIDEOS -o {root} --features {extractor})"
        )
    meta = _read_json(js)
    if not isinstance(meta, dict):
        raise DensevidError(f"{js}: sidecar is not a JSON object")
    try:
        arr = np.load(npy, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DensevidError(f"{npy}: unreadable feature file ({e})") from e
    if arr.ndim != 2:
        raise DensevidError(f"{npy}: expected shape [T, D], found {arr.shape}")
    n, d = arr.shape
    if meta.get("n_frames", n) != n or meta.get("dim", d) != d:
        raise DensevidError(
            f"{npy}: shape {arr.shape} disagrees with its sidecar "
            f"(n_frames={meta.get('n_frames')}, dim={meta.get('dim')}); re-extract it"
        )
    return arr, meta


def save_speech(
    root: str | os.PathLike,
    extractor: str,
    video_id: str,
    segments: Sequence[Mapping[str, Any]],
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Writes a speech stream (timed sentences) atomically as one JSON file.

    Args:
        segments: [{"start": s, "end": s, "text": str}, ...]; sorted by start here.
        meta: extra fields stored beside the segments (e.g. "duration", "engine").
    """
    clean = [_check_segment(s, f"{extractor}/{video_id}") for s in segments]
    clean.sort(key=lambda s: (s["start"], s["end"]))
    obj = dict(meta or {})
    obj.update(
        extractor=extractor,
        kind="speech",
        format_version=FORMAT_VERSION,
        n_segments=len(clean),
        segments=clean,
    )
    path = speech_path(root, extractor, video_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(
        path, lambda f: json.dump(_jsonable(obj), f, indent=1, ensure_ascii=False)
    )
    return path


def load_speech(
    root: str | os.PathLike, extractor: str, video_id: str
) -> list[dict[str, Any]]:
    """Reads a speech stream as [{"start", "end", "text"}, ...] sorted by start.

    Accepts the wrapper object ``save_speech`` writes or a bare JSON list of segments
    (so a user can drop in their own transcripts).
    """
    return load_speech_file(speech_path(root, extractor, video_id))


def load_speech_meta(
    root: str | os.PathLike, extractor: str, video_id: str
) -> dict[str, Any]:
    """The speech file's fields other than the segments ({} for a bare list)."""
    obj = _read_json(speech_path(root, extractor, video_id))
    if isinstance(obj, dict):
        return {k: v for k, v in obj.items() if k != "segments"}
    return {}


def load_speech_file(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Reads one speech JSON file (wrapper object or bare list)."""
    p = Path(path)
    if not p.exists():
        raise DensevidError(f"{p}: no speech stream here")
    obj = _read_json(p)
    segs = obj.get("segments") if isinstance(obj, dict) else obj
    if not isinstance(segs, list):
        raise DensevidError(f"{p}: expected a list of {{start, end, text}} segments")
    out = [_check_segment(s, str(p)) for s in segs]
    out.sort(key=lambda s: (s["start"], s["end"]))
    return out


def has_features(root: str | os.PathLike, extractor: str, video_id: str) -> bool:
    """True when the stream is complete: dense (both files, consistent) or speech.

    Cheap: reads the sidecar and the ``.npy`` header only.
    """
    npy, js = feature_paths(root, extractor, video_id)
    if not js.exists():
        return False
    try:
        with open(js, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return False
    if not isinstance(meta, dict):
        return isinstance(meta, list)  # a bare list of speech segments
    if meta.get("kind") == "speech":
        return isinstance(meta.get("segments"), list)
    if not npy.exists():
        return False
    try:
        arr = np.load(npy, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return False
    return arr.ndim == 2 and tuple(arr.shape) == (meta.get("n_frames"), meta.get("dim"))


def list_videos(root: str | os.PathLike, extractor: str) -> list[str]:
    """Video ids with a complete stream for ``extractor``, sorted."""
    d = Path(root) / extractor
    if not d.is_dir():
        return []
    ids = sorted(p.stem for p in d.glob("*.json") if not p.name.startswith("."))
    return [v for v in ids if has_features(root, extractor, v)]


def clean_partial(root: str | os.PathLike, extractor: str) -> int:
    """Removes temporary files a killed run left behind; returns how many."""
    d = Path(root) / extractor
    n = 0
    if d.is_dir():
        for p in d.glob(".*.tmp"):
            p.unlink(missing_ok=True)
            n += 1
    return n


# --- helpers -----------------------------------------------------------------------


def _stream_dir(root: str | os.PathLike, extractor: str, video_id: str) -> Path:
    for what, name in (("extractor", extractor), ("video id", video_id)):
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise DensevidError(f"invalid {what} {name!r}: must be a plain file name")
    return Path(root) / extractor


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise DensevidError(f"{path}: unreadable JSON ({e})") from e


def _check_segment(seg: Any, where: str) -> dict[str, Any]:
    if not isinstance(seg, Mapping) or any(k not in seg for k in SPEECH_KEYS):
        raise DensevidError(f"{where}: speech segment {seg!r} lacks start/end/text")
    try:
        start, end = float(seg["start"]), float(seg["end"])
    except (TypeError, ValueError) as e:
        raise DensevidError(f"{where}: segment times {seg!r} are not numbers") from e
    if not end >= start:
        raise DensevidError(f"{where}: segment {seg!r} ends before it starts")
    out = dict(seg)
    out.update(start=start, end=end, text=str(seg["text"]))
    return out


def _jsonable(obj: Any) -> Any:
    """numpy scalars/arrays -> plain Python, so json.dump never fails mid-file."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


STALE_TMP_S = 3600  # temporary files older than this are from dead runs (s)


def remove_stale_tmp(directory: str | os.PathLike) -> None:
    """Removes the temporary files of writers that died long ago (a killed run's),
    never those of a live run or shard writing beside this one."""
    d = Path(directory)
    if not d.is_dir():
        return
    now = time.time()
    for tmp in d.glob(".*.tmp"):
        try:
            if now - tmp.stat().st_mtime > STALE_TMP_S:
                tmp.unlink()
        except OSError:
            pass


def stored_configs(directory: str | os.PathLike) -> Iterator[tuple[Path, Any]]:
    """(sidecar, its ``config`` value) of each readable sidecar of a stream's
    directory, in name order: what a run writing into it compares its own options
    with, so that old rows made otherwise are not silently kept."""
    for js in sorted(Path(directory).glob("*.json")):
        try:
            with open(js, encoding="utf-8") as f:
                found = json.load(f).get("config")
        except (OSError, ValueError, AttributeError):
            continue  # an incomplete or foreign file; has_features decides
        yield js, found

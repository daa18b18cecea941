"""Reading distributed feature files one video at a time.

A ``Source`` lists the videos of the files given (``entries``: names and places
only, nothing read) and reads one video's rows when asked (``read``), so a 20 GB
HDF5 file costs the memory of its largest video, not of the file. A video's entry
records, per densevid stream, where each part of its rows lies, or why it cannot
be read (a missing key, half of a pair of files): that video fails alone, while a
file that fits its format nowhere is one error naming the file before anything is
written.

Pickles: a torch ``.pth`` is read with ``torch.load(weights_only=True)``, which
rebuilds tensors and plain containers only; an ASR pickle with an unpickler that
rebuilds plain containers and numbers only. Anything else (arbitrary objects,
which unpickling would construct by running code named in the file) needs
``allow_pickle``.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from densevid.errors import DensevidError, plural
from densevid.importers.formats import Format

logger = logging.getLogger(__name__)

Location = tuple[int, str]  # (index of the file among the sources, key in it)


@dataclass
class Entry:
    """One video as a source has it.

    Attributes:
        source_id: the id as the files spell it.
        parts: stream -> one location per part of its rows (None: part missing).
        problems: stream -> why it cannot be read, found while listing.
        speech: timed sentences of the format's speech stream, when given.
    """

    source_id: str
    parts: dict[str, list[Location | None]] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    speech: list[dict[str, Any]] | None = None

    @property
    def streams(self) -> list[str]:
        """Every stream this video has something for (rows, speech or a problem)."""
        return sorted(set(self.parts) | set(self.problems))


class Source(ABC):
    """The files of one format, opened for reading (a context manager)."""

    def __init__(self, fmt: Format, paths: Sequence[Path]) -> None:
        self.fmt = fmt
        self.paths = list(paths)
        self.n_duplicates = 0  # videos found again in a later file (first kept)
        self.handles: list[Any] = []  # open files, closed by close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the files the source holds open."""
        for handle in self.handles:
            handle.close()
        self.handles = []

    @abstractmethod
    def entries(self) -> dict[str, Entry]:
        """Every video of the sources, by source id, without reading rows."""

    @abstractmethod
    def read_part(self, loc: Location) -> np.ndarray:
        """The array at one location, as stored."""

    def where(self, loc: Location) -> str:
        """A location in words, for messages: ``file:key``."""
        path, key = self.paths[loc[0]], loc[1]
        return f"{path}:{key}" if key else str(path)

    def origin(self, locs: Sequence[Location | None]) -> list[str]:
        """The files a stream's rows came from, for the sidecar's ``source``."""
        return [os.path.abspath(self.paths[loc[0]]) for loc in locs if loc]

    def read(self, stream: str, locs: Sequence[Location | None]) -> np.ndarray:
        """One video's rows of ``stream``, (T, D): its parts checked against the
        format's widths and joined per row."""
        dims = self.fmt.streams[stream]
        arrays = []
        for loc, dim in zip(locs, dims, strict=True):
            if loc is None:  # listing records it as a problem first
                raise DensevidError(f"a part of '{stream}' is missing")
            arrays.append(check_rows(self._read_checked(loc), dim, self.where(loc)))
        rows = {a.shape[0] for a in arrays}
        if len(rows) > 1:
            shapes = ", ".join(
                f"{self.where(loc)} {a.shape}"
                for loc, a in zip(locs, arrays, strict=True)
            )
            raise DensevidError(f"the parts of '{stream}' differ in rows: {shapes}")
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=1)

    def _read_checked(self, loc: Location) -> np.ndarray:
        """read_part, with a library's read error turned into one line."""
        try:
            return self.read_part(loc)
        except DensevidError:
            raise
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
            raise DensevidError(f"{self.where(loc)}: unreadable ({e})") from e

    def _add(
        self, out: dict[str, Entry], sid: str, stream: str, part: int, loc: Location
    ) -> None:
        """Records one part of one stream; a part seen before is a duplicate."""
        entry = out.setdefault(sid, Entry(sid))
        slots = entry.parts.setdefault(stream, [None] * len(self.fmt.streams[stream]))
        if slots[part] is not None:
            self.n_duplicates += 1
            return
        slots[part] = loc


def check_rows(array: Any, dim: int, where: str) -> np.ndarray:
    """A (T, dim) float array with finite values, or one line saying what is
    wrong. A 1-D vector of ``dim`` values is a video of one row (the peers'
    loaders accept those too)."""
    arr = np.asarray(array)
    if arr.ndim == 1 and arr.shape[0] == dim:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise DensevidError(f"{where}: expected shape (T, {dim}), found {arr.shape}")
    if arr.shape[0] == 0:
        raise DensevidError(f"{where}: no rows")
    if not np.issubdtype(arr.dtype, np.floating):
        raise DensevidError(f"{where}: expected float features, found {arr.dtype}")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise DensevidError(f"{where}: {plural(bad, 'row')} with NaN or inf")
    return arr


# --- HDF5 (tsp, c3d, mdvc) ---------------------------------------------------------

# key -> (stream -> dataset path per part, problem or None)
Layout = Callable[[Any, str], tuple[dict[str, list[str]], str | None]]


def _tsp_layout(f: Any, key: str) -> tuple[dict[str, list[str]], str | None]:
    """A TSP file maps each video id to its (T, 512) dataset at the top level."""
    import h5py

    if f.get(key, getclass=True) is not h5py.Dataset:
        return {}, f"'{key}' is a group, expected a (T, 512) dataset"
    return {"tsp": [key]}, None


def _c3d_layout(f: Any, key: str) -> tuple[dict[str, list[str]], str | None]:
    """The ActivityNet C3D file puts each video's rows in <id>/c3d_features."""
    import h5py

    if f.get(key, getclass=True) is not h5py.Group:
        return {}, f"'{key}' is a dataset, expected a group holding 'c3d_features'"
    if f.get(f"{key}/c3d_features", getclass=True) is not h5py.Dataset:
        return {}, f"group '{key}' has no 'c3d_features' dataset"
    return {"c3d": [f"{key}/c3d_features"]}, None


_MDVC_PATHS = {
    "mdvc_rgb": "i3d_features/rgb",
    "mdvc_flow": "i3d_features/flow",
    "mdvc_vggish": "vggish_features",
}


def _mdvc_layout(f: Any, key: str) -> tuple[dict[str, list[str]], str | None]:
    """MDVC's files hold <id>/i3d_features/{rgb,flow} (the video file) and
    <id>/vggish_features (the audio file); a video may lack its audio."""
    import h5py

    if f.get(key, getclass=True) is not h5py.Group:
        return {}, f"'{key}' is a dataset, expected a group of MDVC features"
    found = {
        stream: [f"{key}/{path}"]
        for stream, path in _MDVC_PATHS.items()
        if f.get(f"{key}/{path}", getclass=True) is h5py.Dataset
    }
    if not found:
        return {}, f"group '{key}' has none of {', '.join(_MDVC_PATHS.values())}"
    return found, None


HDF5_LAYOUTS: dict[str, Layout] = {
    "tsp": _tsp_layout,
    "c3d": _c3d_layout,
    "mdvc": _mdvc_layout,
}


class Hdf5Source(Source):
    """HDF5 files read with h5py, one dataset at a time."""

    def __init__(self, fmt: Format, paths: Sequence[Path]) -> None:
        super().__init__(fmt, paths)
        self.layout = HDF5_LAYOUTS[fmt.name]
        self.files = [open_hdf5(p) for p in self.paths]
        self.handles = list(self.files)

    def entries(self) -> dict[str, Entry]:
        out: dict[str, Entry] = {}
        for i, f in enumerate(self.files):
            keys = list(f.keys())
            if not keys:
                raise DensevidError(f"{self.paths[i]}: holds no videos")
            first_problem = None
            n_fit = 0
            for key in keys:
                found, problem = self.layout(f, key)
                if problem is not None:
                    first_problem = first_problem or problem
                    out.setdefault(key, Entry(key)).problems.setdefault(
                        next(iter(self.fmt.streams)), f"{self.paths[i]}: {problem}"
                    )
                    continue
                n_fit += 1
                for stream, paths in found.items():
                    for part, path in enumerate(paths):
                        self._add(out, key, stream, part, (i, path))
            if n_fit == 0:
                raise DensevidError(
                    f"{self.paths[i]}: no entry has the {self.fmt.name} layout "
                    f"({self.fmt.layout}); first entry: {first_problem}"
                )
        return out

    def read_part(self, loc: Location) -> np.ndarray:
        return np.asarray(self.files[loc[0]][loc[1]][()])


def open_hdf5(path: Path) -> Any:
    """An HDF5 file opened read-only (no file lock, so read-only media work), or
    one line saying why not."""
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - a dependency of densevid
        raise DensevidError("HDF5 formats need h5py: pip install h5py") from e
    if path.is_dir():
        raise DensevidError(f"{path}: a directory, expected an HDF5 file")
    if not path.is_file():
        raise DensevidError(f"{path}: no such file")
    try:
        return h5py.File(path, "r", locking=False)
    except OSError as e:
        raise DensevidError(f"{path}: not a readable HDF5 file ({e})") from None


# --- .npy files (tsn, i3d, vggish) -------------------------------------------------


class NpySource(Source):
    """One .npy file per video and part, named <id><suffix>.npy; directories are
    searched recursively (densecap's split folders)."""

    def __init__(self, fmt: Format, paths: Sequence[Path]) -> None:
        files: list[Path] = []
        for p in paths:
            if p.is_dir():
                files += sorted(q for q in p.rglob("*.npy") if q.is_file())
            elif p.is_file():
                files.append(p)
            else:
                raise DensevidError(f"{p}: no such file or directory")
        super().__init__(fmt, files)
        self.given = list(paths)

    def entries(self) -> dict[str, Entry]:
        out: dict[str, Entry] = {}
        n_other = 0
        by_length = sorted(self.fmt.suffixes.items(), key=lambda kv: -len(kv[0]))
        for i, path in enumerate(self.paths):
            named = _split_suffix(path.name[: -len(".npy")], by_length)
            if named is None:
                n_other += 1
                continue
            sid, (stream, part) = named
            self._add(out, sid, stream, part, (i, ""))
        if n_other:
            logger.info(
                "%s not named as %s ignored", plural(n_other, "file"), self.fmt.layout
            )
        if not out:
            names = " or ".join(f"<id>{s}.npy" for s in self.fmt.suffixes)
            where = ", ".join(str(p) for p in self.given)
            raise DensevidError(f"{where}: no file named {names}")
        for entry in out.values():
            self._note_missing_parts(entry)
        return out

    def _note_missing_parts(self, entry: Entry) -> None:
        """A stream of several files per video (TSN) lacking one of them cannot be
        built: recorded as that video's problem."""
        suffix = {v: k for k, v in self.fmt.suffixes.items()}
        for stream, slots in list(entry.parts.items()):
            if all(slots):
                continue
            have = [self.paths[s[0]] for s in slots if s]
            lacking = [
                f"{entry.source_id}{suffix[(stream, k)]}.npy"
                for k, s in enumerate(slots)
                if s is None
            ]
            entry.problems[stream] = f"{have[0]}: no {' or '.join(lacking)} beside it"
            del entry.parts[stream]

    def read_part(self, loc: Location) -> np.ndarray:
        return np.load(self.paths[loc[0]], allow_pickle=False)


def _split_suffix(
    stem: str, suffixes: Sequence[tuple[str, tuple[str, int]]]
) -> tuple[str, tuple[str, int]] | None:
    """'v_abc_rgb' -> ('v_abc', ('i3d_rgb', 0)) by the longest suffix that fits."""
    for suffix, target in suffixes:
        if not suffix:
            return stem, target
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)], target
    return None


# --- torch .pth (clip-pth) and its ASR pickle --------------------------------------


class PthSource(Source):
    """Torch files each holding {video id: (T, D) tensor}; loaded memory-mapped
    where the file allows, so tensors are read when a video is."""

    def __init__(
        self,
        fmt: Format,
        paths: Sequence[Path],
        *,
        asr: Path | None = None,
        allow_pickle: bool = False,
    ) -> None:
        super().__init__(fmt, paths)
        self.tables = [load_pth(p, allow_pickle) for p in self.paths]
        self.asr = load_asr(asr, allow_pickle) if asr is not None else None
        self.asr_paths = [asr] if asr is not None else []

    def entries(self) -> dict[str, Entry]:
        out: dict[str, Entry] = {}
        (stream,) = self.fmt.streams
        for i, table in enumerate(self.tables):
            for key in table:
                self._add(out, str(key), stream, 0, (i, str(key)))
        for sid, segments in (self.asr or {}).items():
            entry = out.setdefault(sid, Entry(sid))
            if isinstance(segments, str):
                entry.problems[self.fmt.speech_stream] = segments
            else:
                entry.speech = segments
        return out

    def read_part(self, loc: Location) -> np.ndarray:
        table = self.tables[loc[0]]
        value = table[loc[1]] if loc[1] in table else table[_int_key(loc[1])]
        return _as_numpy(value)


def _int_key(key: str) -> Any:
    """Tables keyed by numbers are listed by their string; this finds them back."""
    try:
        return int(key)
    except ValueError:
        return key


def _as_numpy(value: Any) -> np.ndarray:
    """A tensor (float16 kept, bfloat16 widened) or array as numpy."""
    if hasattr(value, "detach"):
        import torch

        t = value.detach().cpu()
        if t.dtype not in (torch.float16, torch.float32, torch.float64):
            t = t.float() if t.is_floating_point() else t
        return t.numpy()
    return np.asarray(value)


def load_pth(path: Path, allow_pickle: bool) -> Mapping[Any, Any]:
    """A .pth file's {id: tensor} table: weights_only (tensors and containers
    only) and memory-mapped when the file is of torch's zip format."""
    if not path.is_file():
        raise DensevidError(f"{path}: no such file")
    try:
        table = _load_weights_only(path)
    except pickle.UnpicklingError as e:
        refused = re.search(r"GLOBAL (\S+) was not an allowed global", str(e))
        if allow_pickle:
            table = _load_trusted_pth(path)
        elif refused:
            raise DensevidError(
                f"{path}: holds objects of type {refused.group(1)}, which only "
                "unpickling arbitrary code can rebuild; pass --allow-pickle if you "
                "trust the file"
            ) from None
        else:
            raise DensevidError(
                f"{path}: not a torch file of plain tensors (the weights-only "
                "unpickler stopped); if it is a torch file you trust, "
                "--allow-pickle reads it fully"
            ) from None
    except Exception as e:  # noqa: BLE001 - a foreign file fails in many ways in torch
        raise DensevidError(
            f"{path}: not a readable torch file ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(table, Mapping):
        raise DensevidError(
            f"{path}: expected a dict {{video id: (T, D) tensor}}, "
            f"found {type(table).__name__}"
        )
    return table


def _load_weights_only(path: Path) -> Any:
    """torch.load of tensors and containers only, memory-mapped when the file is
    of torch's zip format (the default since torch 1.6), read whole otherwise."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as e:
        if "mmap" not in str(e):
            raise
    return torch.load(path, map_location="cpu", weights_only=True)


def _load_trusted_pth(path: Path) -> Any:
    """torch.load with full unpickling: only with --allow-pickle."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any failure of a foreign pickle
        raise DensevidError(f"{path}: unreadable ({type(e).__name__}: {e})") from None


# Globals a plain-data pickle may name: numpy scalars and arrays of numbers (as
# whisper/whisperX times are) and the bytes codec protocol 2 uses for them.
_DATA_GLOBALS = {
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle names a class or function that plain data does not need."""


class _DataUnpickler(pickle.Unpickler):
    """Rebuilds containers, strings and numbers only: any other global is refused
    before it is imported, so a hostile file runs nothing."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _DATA_GLOBALS or module.startswith("numpy.dtypes"):
            return super().find_class(module, name)
        raise RefusedGlobal(f"{module}.{name}")


def load_asr(path: Path, allow_pickle: bool) -> dict[str, list[dict[str, Any]] | str]:
    """VidChapters' ASR pickle as {video id: [{"start", "end", "text"}, ...]}
    (or, for an entry of another shape, the reason as a string).

    Reads both shapes VidChapters writes: {id: {"start": [...], "end": [...],
    "text": [...]}} (the ``_proc.pkl`` files its loaders read) and
    {id: {"segments": [{"start", "end", "text"}, ...]}}.
    """
    if not path.is_file():
        raise DensevidError(f"{path}: no such file")
    try:
        with open(path, "rb") as f:
            data = pickle.load(f) if allow_pickle else _DataUnpickler(f).load()
    except RefusedGlobal as e:
        raise DensevidError(
            f"{path}: holds objects of type {e} that only unpickling arbitrary "
            "code can rebuild; pass --allow-pickle if you trust the file"
        ) from None
    except (
        pickle.UnpicklingError,
        OSError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        ImportError,
        IndexError,
    ) as e:
        raise DensevidError(f"{path}: not a readable pickle ({e})") from None
    if not isinstance(data, Mapping):
        raise DensevidError(
            f"{path}: expected a dict {{video id: {{start, end, text}}}}, "
            f"found {type(data).__name__}"
        )
    return {str(k): _segments(v, f"{path}:{k}") for k, v in data.items()}


_ASR_KEYS = ("start", "end", "text")


def _segments(value: Any, where: str) -> list[dict[str, Any]] | str:
    """One video's ASR as timed sentences (blank ones dropped), or the reason it
    cannot be read."""
    if isinstance(value, Mapping) and isinstance(value.get("segments"), list):
        rows = value["segments"]
    elif isinstance(value, Mapping) and all(k in value for k in _ASR_KEYS):
        cols = [list(value[k]) for k in _ASR_KEYS]
        if len({len(c) for c in cols}) != 1:
            return f"{where}: start, end and text differ in length"
        rows = [
            dict(zip(_ASR_KEYS, row, strict=True)) for row in zip(*cols, strict=True)
        ]
    else:
        return f"{where}: expected {{'start', 'end', 'text'}} lists or 'segments'"
    out = []
    for seg in rows:
        try:
            start, end, text = float(seg["start"]), float(seg["end"]), str(seg["text"])
        except (KeyError, TypeError, ValueError):
            return f"{where}: segment {seg!r} lacks numeric start/end and text"
        if text.strip():
            out.append({"start": start, "end": max(start, end), "text": text.strip()})
    return out

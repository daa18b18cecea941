"""Narrated-video corpora for pretraining, streamed without an index in memory.

A corpus is a list of *units*, each yielding raw samples, plus a decoder that turns a
raw sample into a ``NarratedVideo`` (frame features, their times, the transcript):

- ``FeatureDirSource``: a FEATURES directory as ``densevid extract`` writes it; one
  unit per video that has both the visual stream and the speech stream;
- ``ShardSource``: webdataset tar shards, one unit per tar. A sample is the files
  sharing a key (``<key>.<ext>``). Read here:

  * ``<visual>.npy`` + ``<visual>.json`` (array and sidecar) and ``<speech>.json``,
    what ``densevid extract --webdataset`` packs;
  * video2dataset's layout: the video (``mp4``...; its visual features are then
    extracted on the fly with the registry extractor, e.g. ``pixels``), subtitles as
    ``vtt``/``srt`` files or inside the metadata ``json``
    (``yt_meta_dict.subtitles``: a list, or language -> list, of
    ``{"start": "HH:MM:SS.mmm", "end", "lines"}``), and the duration from the
    metadata (``duration`` or ``yt_meta_dict.info.duration``).

Work is split by unit: every epoch all processes shuffle the unit list with the same
seed and slot ``s`` of ``n`` (``slot = rank * n_workers + worker``) takes units
``s, s + n, ...``, so DDP ranks and dataloader workers read disjoint shards and never
hold a list of samples. With fewer units than slots each slot reads every unit and
keeps every n-th sample instead, which still gives each sample to exactly one slot.

A fixed fraction of the corpus is held out by a hash of the sample key (no index
needed); training never sees those samples and evaluation reads only them.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from densevid.errors import DensevidError
from densevid.files import VIDEO_EXTENSIONS
from densevid.inputs import row_times, select_blocks

logger = logging.getLogger(__name__)

VIDEO_EXTS = tuple(e.lstrip(".") for e in VIDEO_EXTENSIONS)  # webdataset keys
SUBTITLE_EXTS = ("vtt", "srt")
HASH_SCALE = 2**32  # crc32 range, for the held-out fraction
MAX_WARNINGS = 20  # bad samples logged one by one before going quiet


@dataclass(frozen=True)
class NarratedVideo:
    """One decoded corpus sample: features with row times (s) and the transcript."""

    key: str
    duration: float
    visual: np.ndarray  # (T, D)
    visual_times: np.ndarray  # (T,)
    speech: list[dict[str, Any]]  # [{start, end, text}] sorted by start
    audio: np.ndarray | None = None  # (Ta, Da)
    audio_times: np.ndarray | None = None


def is_heldout(key: str, fraction: float) -> bool:
    """Whether a sample belongs to the held-out part (a stable hash of its key)."""
    return fraction > 0 and zlib.crc32(key.encode("utf-8")) < fraction * HASH_SCALE


def expand_shards(spec: str | Sequence[str]) -> list[str]:
    """Tar shard paths from a directory, a glob, a brace pattern or a comma list.

    ``data/shards`` (every ``*.tar`` below it, sorted), ``data/*.tar``,
    ``data/{000000..000009}.tar`` (webdataset's brace notation), ``a.tar,b.tar``.
    """
    import glob

    from braceexpand import braceexpand

    items = [spec] if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            p = Path(part)
            if p.is_dir():
                found = sorted(str(f) for f in p.rglob("*.tar"))
                if not found:
                    raise DensevidError(f"{p}: no .tar shards in this directory")
                out += found
                continue
            for name in braceexpand(part):
                if any(c in name for c in "*?["):
                    found = sorted(glob.glob(name))
                    if not found:
                        raise DensevidError(f"{name}: no shard matches this pattern")
                    out += found
                elif Path(name).is_file():
                    out.append(name)
                else:
                    raise DensevidError(f"{name}: no such shard")
    if not out:
        raise DensevidError(f"no shards found in {spec!r}")
    return out


# --- sources -------------------------------------------------------------------------


class CorpusSource:
    """Units (shards or videos), how to read a unit and how to decode a sample."""

    units: list[str]

    def read(self, unit: str) -> Iterator[dict[str, Any]]:
        """Raw samples of one unit, each a dict with ``__key__``."""
        raise NotImplementedError

    def decode(self, raw: dict[str, Any]) -> NarratedVideo:
        """A raw sample -> NarratedVideo; raises DensevidError for a bad sample."""
        raise NotImplementedError

    def transcript(self, raw: dict[str, Any]) -> list[dict[str, Any]]:
        """Only the speech segments of a raw sample (no features read or computed)."""
        raise NotImplementedError


class FeatureDirSource(CorpusSource):
    """Videos of a FEATURES directory with a complete visual and speech stream.

    Args:
        root: the FEATURES directory.
        visual: the visual extractor (``FEATURES/<visual>/<id>.npy``).
        speech: the speech extractor (``asr`` or ``subtitles``).
        audio: an audio extractor, or "" for none.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        visual: str,
        speech: str,
        audio: str = "",
        blocks: Sequence[str] = (),
    ) -> None:
        from densevid.features.cache import list_videos

        self.root, self.visual, self.speech, self.audio = root, visual, speech, audio
        self.blocks = list(blocks)  # visual feature blocks kept (model.visual_blocks)
        if not Path(root).is_dir():
            raise DensevidError(f"{root}: no such FEATURES directory")
        ids = set(list_videos(root, visual)) & set(list_videos(root, speech))
        if audio:
            ids &= set(list_videos(root, audio))
        if not ids:
            raise DensevidError(
                f"{root}: no video has both '{visual}' features and a '{speech}' "
                f"transcript (run: densevid extract VIDEOS -o {root} "
                f"--features {visual},{speech})"
            )
        self.units = sorted(ids)

    def read(self, unit: str) -> Iterator[dict[str, Any]]:
        yield {"__key__": unit}

    def transcript(self, raw: dict[str, Any]) -> list[dict[str, Any]]:
        from densevid.features.cache import load_speech

        return load_speech(self.root, self.speech, raw["__key__"])

    def decode(self, raw: dict[str, Any]) -> NarratedVideo:
        from densevid.features.cache import load_features, load_speech, load_speech_meta

        vid = raw["__key__"]
        array, meta = load_features(self.root, self.visual, vid)
        array = select_blocks(array, meta, self.blocks, f"{self.root}/{self.visual}")
        speech = load_speech(self.root, self.speech, vid)
        duration = _duration(
            meta, load_speech_meta(self.root, self.speech, vid), where=vid
        )
        audio = audio_times = None
        if self.audio:
            a, ameta = load_features(self.root, self.audio, vid)
            audio = np.asarray(a, dtype=np.float32)
            audio_times = row_times(ameta, a.shape[0], duration)
        return NarratedVideo(
            vid,
            duration,
            np.asarray(array, dtype=np.float32),
            row_times(meta, array.shape[0], duration),
            speech,
            audio,
            audio_times,
        )


class ShardSource(CorpusSource):
    """webdataset tar shards (see the module docstring for what a sample may hold).

    Args:
        shards: a spec for ``expand_shards``.
        visual, speech, audio: extractor names, as for FeatureDirSource.
        extract_options: options of the visual extractor, used when a sample holds a
            video but no ``<visual>.npy``.
    """

    def __init__(
        self,
        shards: str | Sequence[str],
        visual: str,
        speech: str,
        audio: str = "",
        extract_options: dict[str, Any] | None = None,
        blocks: Sequence[str] = (),
    ) -> None:
        self.units = expand_shards(shards)
        self.visual, self.speech, self.audio = visual, speech, audio
        self.blocks = list(blocks)  # visual feature blocks kept (model.visual_blocks)
        self.extract_options = dict(extract_options or {})
        self._extractors: dict[str, Any] = {}

    def read(self, unit: str) -> Iterator[dict[str, Any]]:
        from webdataset.tariterators import tarfile_samples

        try:
            yield from tarfile_samples([{"url": unit}])
        except (OSError, ValueError, EOFError) as e:  # tarfile.ReadError is OSError
            raise DensevidError(f"{unit}: unreadable tar shard ({e})") from e

    def decode(self, raw: dict[str, Any]) -> NarratedVideo:

        key = raw["__key__"]
        where = f"{raw.get('__url__', '?')}:{key}"
        metadata = _json(raw.get("json"), where) if "json" in raw else {}
        if f"{self.visual}.npy" in raw:
            array = _npy(raw[f"{self.visual}.npy"], where)
            meta = _json(raw.get(f"{self.visual}.json"), where) or {}
        else:
            array, meta = self._extract(raw, self.visual, where)
        array = select_blocks(array, meta, self.blocks, where)
        speech, speech_meta = self._speech(raw, metadata, where)
        duration = _duration(meta, speech_meta, metadata, where=where)
        audio = audio_times = None
        if self.audio:
            if f"{self.audio}.npy" in raw:
                audio = _npy(raw[f"{self.audio}.npy"], where)
                ameta = _json(raw.get(f"{self.audio}.json"), where) or {}
            else:
                audio, ameta = self._extract(raw, self.audio, where)
            audio_times = row_times(ameta, audio.shape[0], duration)
        return NarratedVideo(
            key,
            duration,
            array,
            row_times(meta, array.shape[0], duration),
            speech,
            audio,
            audio_times,
        )

    def transcript(self, raw: dict[str, Any]) -> list[dict[str, Any]]:
        where = f"{raw.get('__url__', '?')}:{raw['__key__']}"
        metadata = _json(raw.get("json"), where) if "json" in raw else {}
        return self._speech(raw, metadata, where)[0]

    def _speech(
        self, raw: dict[str, Any], metadata: dict[str, Any], where: str
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        if f"{self.speech}.json" in raw:
            obj = _json(raw[f"{self.speech}.json"], where)
            segs = obj.get("segments") if isinstance(obj, dict) else obj
            meta = obj if isinstance(obj, dict) else {}
            return _check_segments(segs, where), meta
        for ext in SUBTITLE_EXTS:
            names = [k for k in raw if k == ext or k.endswith(f".{ext}")]
            if names:
                return _subtitles_from_bytes(raw[sorted(names)[0]], ext, where), {}
        yt = metadata.get("yt_meta_dict") if isinstance(metadata, dict) else None
        if isinstance(yt, dict) and yt.get("subtitles"):
            return _yt_subtitles(yt["subtitles"], where), {}
        raise DensevidError(
            f"{where}: no transcript ('{self.speech}.json', .vtt/.srt or "
            "yt_meta_dict.subtitles in the metadata)"
        )

    def _extract(
        self, raw: dict[str, Any], name: str, where: str
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Runs the registry extractor on the sample's video (video2dataset shards)."""
        from densevid.features.registry import get_extractor

        exts = [k for k in raw if k in VIDEO_EXTS]
        if not exts:
            raise DensevidError(f"{where}: neither '{name}.npy' features nor a video")
        if name not in self._extractors:
            opts = self.extract_options if name == self.visual else {}
            self._extractors[name] = get_extractor(name, **opts)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"video.{exts[0]}"
            path.write_bytes(raw[exts[0]])
            res = self._extractors[name](path)
        if res.array is None:
            raise DensevidError(f"{where}: extractor '{name}' returned no array")
        return np.asarray(res.array, dtype=np.float32), dict(res.meta)


def _npy(data: bytes, where: str) -> np.ndarray:
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DensevidError(f"{where}: unreadable .npy ({e})") from e
    if arr.ndim != 2:
        raise DensevidError(f"{where}: features must be [T, D], found {arr.shape}")
    return np.asarray(arr, dtype=np.float32)


def _json(data: bytes | None, where: str) -> Any:
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError as e:
        raise DensevidError(f"{where}: unreadable JSON ({e})") from e


def _check_segments(segs: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(segs, list):
        raise DensevidError(f"{where}: expected a list of {{start, end, text}}")
    out = []
    for s in segs:
        try:
            start, end, text = float(s["start"]), float(s["end"]), str(s["text"])
        except (KeyError, TypeError, ValueError) as e:
            raise DensevidError(f"{where}: bad speech segment {s!r}") from e
        out.append({"start": start, "end": end, "text": text})
    out.sort(key=lambda s: (s["start"], s["end"]))
    return out


def _subtitles_from_bytes(data: bytes, ext: str, where: str) -> list[dict[str, Any]]:
    from densevid.features.subtitles import subtitle_sentences

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"sub.{ext}"
        path.write_bytes(data)
        try:
            return _check_segments(subtitle_sentences(path), where)
        except DensevidError as e:
            raise DensevidError(f"{where}: {e}") from e


def _yt_subtitles(subs: Any, where: str) -> list[dict[str, Any]]:
    """video2dataset's ``yt_meta_dict.subtitles``: the first language's lines."""
    from densevid.features.subtitles import parse_timestamp

    if isinstance(subs, dict):
        subs = next(iter(subs.values()), [])
    out = []
    for line in subs or []:
        try:
            text = line.get("lines", line.get("text", ""))
            if isinstance(text, dict):  # several languages per line
                text = next(iter(text.values()), "")
            if isinstance(text, list):
                text = " ".join(str(t) for t in text)
            out.append(
                {
                    "start": _seconds(line["start"], parse_timestamp),
                    "end": _seconds(line["end"], parse_timestamp),
                    "text": str(text),
                }
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise DensevidError(f"{where}: bad subtitle line {line!r}") from e
    return _check_segments(out, where)


def _seconds(value: Any, parse: Callable[[str], float]) -> float:
    return float(value) if isinstance(value, int | float) else parse(str(value))


def _duration(*metas: Any, where: str) -> float:
    """The first positive ``duration`` among the sidecars/metadata given."""
    for m in metas:
        if not isinstance(m, dict):
            continue
        candidates = [m.get("duration")]
        yt = m.get("yt_meta_dict")
        if isinstance(yt, dict) and isinstance(yt.get("info"), dict):
            candidates.append(yt["info"].get("duration"))
        for d in candidates:
            try:
                if d is not None and float(d) > 0:
                    return float(d)
            except (TypeError, ValueError):
                continue
    raise DensevidError(f"{where}: no video duration in the sidecar or metadata")


# --- streaming ---------------------------------------------------------------------


def slot_units(
    units: Sequence[str], slot: int, n_slots: int, epoch: int, seed: int
) -> tuple[list[str], int]:
    """This slot's units for one epoch and the sample stride within them.

    Returns (units, stride): stride 1 when units are split by unit; ``n_slots`` when
    there are fewer units than slots and every slot reads all of them (keeping the
    samples ``i`` with ``i % n_slots == slot``).
    """
    order = list(units)
    random.Random(f"{seed}:{epoch}").shuffle(order)
    if len(order) >= n_slots:
        return order[slot::n_slots], 1
    return order, n_slots


def iter_raw(
    source: CorpusSource,
    units: Sequence[str],
    slot: int,
    n_slots: int,
    *,
    seed: int = 0,
    epoch: int = 0,
    heldout_fraction: float = 0.0,
) -> Iterator[dict[str, Any]]:
    """One epoch of this slot's raw training samples (held-out ones left out)."""
    mine, stride = slot_units(units, slot, n_slots, epoch, seed)
    i = 0
    for unit in mine:
        for raw in source.read(unit):
            take = stride == 1 or i % stride == slot
            i += 1
            if take and not is_heldout(raw["__key__"], heldout_fraction):
                yield raw


def shuffled(items: Iterator[Any], buffer: int, rng: random.Random) -> Iterator[Any]:
    """A bounded shuffle buffer: mixes samples across units without an index."""
    if buffer <= 1:
        yield from items
        return
    pool: list[Any] = []
    for item in items:
        pool.append(item)
        if len(pool) >= buffer:
            j = rng.randrange(len(pool))
            pool[j], pool[-1] = pool[-1], pool[j]
            yield pool.pop()
    rng.shuffle(pool)
    yield from pool


class CorpusStream:
    """An endless (or one-epoch) stream of transformed samples for one process.

    An ``IterableDataset``: under a DataLoader each worker takes its own slot. The
    k-th sample of a slot depends only on (seed, slot, k), so ``skip`` (samples already
    consumed per slot, e.g. on resume) reproduces the stream after it exactly.

    Args:
        source: the corpus.
        transform: (NarratedVideo, rng) -> an item, or None to drop the sample.
        rank, world: this process in the DDP job.
        seed: shuffling and per-sample randomness.
        shuffle_buffer: samples mixed in memory (1: unit order).
        heldout_fraction: samples held out by key hash (never yielded here).
        epochs: passes over the corpus; None for endless.
        skip: per-slot samples to pass over first; a function of (slot, n_slots)
            or an int.
    """

    def __init__(
        self,
        source: CorpusSource,
        transform: Callable[[NarratedVideo, np.random.Generator], Any],
        *,
        rank: int = 0,
        world: int = 1,
        seed: int = 0,
        shuffle_buffer: int = 100,
        heldout_fraction: float = 0.0,
        epochs: int | None = None,
        skip: int | Callable[[int, int], int] = 0,
    ) -> None:
        self.source, self.transform = source, transform
        self.rank, self.world, self.seed = rank, world, seed
        self.shuffle_buffer, self.heldout_fraction = shuffle_buffer, heldout_fraction
        self.epochs, self.skip = epochs, skip
        self.n_bad = 0

    def slot(self) -> tuple[int, int]:
        """(slot, n_slots) of the calling process/worker."""
        import torch.utils.data

        info = torch.utils.data.get_worker_info()
        n_workers, worker = (info.num_workers, info.id) if info else (1, 0)
        return self.rank * n_workers + worker, self.world * n_workers

    def __iter__(self) -> Iterator[Any]:
        slot, n_slots = self.slot()
        skip = self.skip(slot, n_slots) if callable(self.skip) else self.skip

        def raw_stream() -> Iterator[dict[str, Any]]:
            epoch = 0
            while self.epochs is None or epoch < self.epochs:
                n = 0
                for raw in iter_raw(
                    self.source,
                    self.source.units,
                    slot,
                    n_slots,
                    seed=self.seed,
                    epoch=epoch,
                    heldout_fraction=self.heldout_fraction,
                ):
                    n += 1
                    yield raw
                if n == 0 and self.epochs is None:
                    # an endless stream with nothing to give would spin forever and
                    # leave the other DDP ranks waiting
                    raise DensevidError(
                        f"slot {slot}/{n_slots} got no training samples: the corpus "
                        f"({len(self.source.units)} units) is too small or all held "
                        "out for this many processes x workers"
                    )
                epoch += 1

        rng = random.Random(f"{self.seed}:shuffle:{slot}")
        for k, raw in enumerate(shuffled(raw_stream(), self.shuffle_buffer, rng)):
            if k < skip:
                continue
            item = self.decode(raw, np.random.default_rng([self.seed, slot, k]))
            if item is not None:
                yield item

    def decode(self, raw: dict[str, Any], rng: np.random.Generator) -> Any:
        """Decodes and transforms one raw sample; a bad one is logged and dropped."""
        try:
            return self.transform(self.source.decode(raw), rng)
        except DensevidError as e:
            self.n_bad += 1
            if self.n_bad <= MAX_WARNINGS:
                logger.warning("skipping sample: %s", e)
            return None


def heldout_samples(
    source: CorpusSource, fraction: float, max_samples: int
) -> Iterator[dict[str, Any]]:
    """Raw held-out samples in unit order, at most ``max_samples`` of them.

    Reads units in their listed order only until enough are found, so evaluating
    costs a bounded read whatever the corpus size.
    """
    if fraction <= 0 or max_samples <= 0:
        return
    n = 0
    for unit in source.units:
        for raw in source.read(unit):
            if is_heldout(raw["__key__"], fraction):
                yield raw
                n += 1
                if n >= max_samples:
                    return

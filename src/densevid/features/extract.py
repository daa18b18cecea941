"""The extraction run: many videos x several extractors -> the feature cache.

``extract_features`` is what ``densevid extract`` calls. It is built for corpora that
take hours:

- incremental: a (video, extractor) whose output is complete (``cache.has_features``)
  is skipped, so re-running after a crash, a kill or new videos does only what is
  missing; every file is written atomically, so a killed run leaves no half file;
- sharded: ``shard=(i, n)`` takes every n-th video of the sorted list from the i-th,
  so n independent jobs (Slurm array, Ray, Spark) split a corpus with no coordination,
  and ``check_features`` then says whether they left any video out;
- parallel: ``workers`` processes, each loading its models once, or an ``Engine``
  that runs the same per-video work elsewhere (``ray_engine.RayEngine``: a cluster);
- forgiving: a video that fails (corrupt, no audio for an audio extractor, no subtitle
  file) is reported in the summary and the run goes on; one whose extractor raised an
  unexpected error (I/O, memory) is tried again up to ``retries`` times first.

With ``webdataset=True`` the complete outputs of the run's videos are also packed into
webdataset tar shards, one sample per video (``__key__`` = video id, one
``<extractor>.npy`` + ``<extractor>.json`` per dense stream, ``<extractor>.json`` per
speech stream), for streaming pretraining.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from densevid.errors import DensevidError, plural
from densevid.features import cache
from densevid.features.registry import (
    Extractor,
    ExtractorInfo,
    available_extractors,
    get_extractor,
    option_differences,
    parse_feature_list,
    register_extractor,
)
from densevid.files import find_videos
from densevid.video import decode_checked
from densevid.workers import stoppable_pool

logger = logging.getLogger(__name__)

WDS_DIR = "webdataset"
WDS_MAXCOUNT = 1000  # videos per tar shard


@dataclass
class StreamReport:
    """What a run that writes the feature cache did, per (video id, stream): the
    counts ``extract`` and ``import`` report and decide their exit status by."""

    n_videos: int = 0
    done: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed_videos(self) -> set[str]:
        """Videos with at least one stream that failed."""
        return {vid for vid, _, _ in self.failed}

    @property
    def written_videos(self) -> set[str]:
        """Videos whose streams were all written, some of them by this run."""
        return {vid for vid, _ in self.done} - self.failed_videos

    @property
    def n_done(self) -> int:
        """Videos whose every stream is in the cache now, written or found."""
        return self.n_videos - len(self.failed_videos)

    @property
    def n_complete_before(self) -> int:
        """Videos this run found complete and left alone."""
        touched = self.failed_videos | {vid for vid, _ in self.done}
        return len({vid for vid, _ in self.skipped} - touched)


@dataclass
class ExtractReport(StreamReport):
    """What an extraction run did; ``shards`` are its webdataset tars."""

    shards: list[Path] = field(default_factory=list)

    @property
    def extracted_videos(self) -> set[str]:
        return self.written_videos

    def summary(self) -> str:
        """Several lines: counts of videos, then one line per failed stream."""
        lines = [
            f"{plural(self.n_videos, 'video')} in {self.seconds:.1f} s: "
            f"{len(self.extracted_videos)} extracted, {self.n_complete_before} "
            f"already complete, {len(self.failed_videos)} failed"
        ]
        lines += [f"  failed {vid} [{ext}]: {why}" for vid, ext, why in self.failed]
        if self.shards:
            lines.append(
                f"  {len(self.shards)} webdataset shards in {self.shards[0].parent}"
            )
        return "\n".join(lines)


@dataclass
class CheckReport(StreamReport):
    """What ``check_features`` found: ``skipped`` holds the complete streams,
    ``failed`` the missing ones with why; ``shards`` are its webdataset tars."""

    shards: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        """One line of counts (the streams themselves are in ``failed``)."""
        lines = [
            f"{plural(self.n_videos, 'video')} checked in {self.seconds:.1f} s: "
            f"{self.n_done} complete, {len(self.failed_videos)} incomplete "
            f"({plural(len(self.failed), 'stream')} missing or made otherwise)"
        ]
        if self.shards:
            lines.append(
                f"  {len(self.shards)} webdataset shards in {self.shards[0].parent}"
            )
        return "\n".join(lines)


Result = tuple[str, str, str | None]  # (video id, extractor, None or why it failed)


@dataclass(frozen=True)
class ExtractJob:
    """What a worker needs to extract any video of a run, picklable so that a process
    pool or a cluster sends it to each worker once.

    ``infos`` are the extractors' registry entries: a worker on another machine, or a
    spawned process, has only the built-in ones registered.
    """

    out: Path
    infos: tuple[ExtractorInfo, ...]
    options: Mapping[str, Mapping[str, Any]]
    allow_partial: bool = False
    retries: int = 0

    @property
    def names(self) -> list[str]:
        return [info.name for info in self.infos]

    def build(self) -> dict[str, Extractor]:
        """The run's extractors, registering any this process does not know."""
        known = available_extractors()
        for info in self.infos:
            if info.name not in known:
                register_extractor(info)
        return {n: get_extractor(n, **self.options.get(n, {})) for n in self.names}

    def process(
        self, path: Path, extractors: Mapping[str, Extractor], missing: Sequence[str]
    ) -> list[Result]:
        """``process_video`` of the ``missing`` streams of one video."""
        return process_video(
            path,
            self.out,
            {n: extractors[n] for n in missing},
            allow_partial=self.allow_partial,
            retries=self.retries,
        )


class Engine(Protocol):
    """Runs a job's videos somewhere other than this process's pool (a cluster).

    ``run`` calls ``record`` in this process once per video of ``todo``, in any
    order, with that video's results (``process_video``'s), and returns when all are
    recorded; a video it could not run is recorded as failed, with why.
    """

    def run(
        self,
        todo: Sequence[tuple[Path, list[str]]],
        job: ExtractJob,
        record: Callable[[list[Result]], None],
    ) -> None: ...


def start_worker(job: ExtractJob, n_threads: int) -> dict[str, Extractor]:
    """What a worker process does first: its share of the CPU threads, warnings
    only, and the run's extractors built once (models loaded once per worker)."""
    import torch

    torch.set_num_threads(n_threads)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    return job.build()


ReportT = TypeVar("ReportT", bound=StreamReport)


def videos_by_id(
    inputs: Sequence[str | os.PathLike], *, recursive: bool = True
) -> list[Path]:
    """Video files (``densevid.files.find_videos``) sorted by id.

    Raises DensevidError for a missing path, a directory with no videos, or two
    videos with the same id (file stem), since their features would collide.
    """
    by_id: dict[str, Path] = {}
    for v in find_videos(inputs, recursive=recursive):
        if v.stem in by_id:
            raise DensevidError(
                f"two videos share the id '{v.stem}': {by_id[v.stem]} and {v}; "
                "rename one (features are stored by file stem)"
            )
        by_id[v.stem] = v
    return [by_id[k] for k in sorted(by_id)]


def parse_shard(spec: str | tuple[int, int] | None) -> tuple[int, int]:
    """'2/8' -> (2, 8): the 0-based shard index and the number of shards."""
    if spec is None:
        return 0, 1
    if isinstance(spec, str):
        try:
            i_s, n_s = spec.split("/")
            i, n = int(i_s), int(n_s)
        except ValueError as e:
            raise DensevidError(
                f"bad shard {spec!r}: expected INDEX/COUNT such as 0/4"
            ) from e
    else:
        i, n = spec
    if not (n >= 1 and 0 <= i < n):
        raise DensevidError(f"bad shard {i}/{n}: need 0 <= INDEX < COUNT")
    return i, n


def extract_features(
    videos: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    features: Sequence[str] | str = ("pixels",),
    *,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    shard: str | tuple[int, int] | None = None,
    workers: int = 1,
    engine: Engine | None = None,
    retries: int = 0,
    overwrite: bool = False,
    webdataset: bool = False,
    shard_size: int = WDS_MAXCOUNT,
    recursive: bool = True,
    allow_partial: bool = False,
    verbose: bool = True,
) -> ExtractReport:
    """Extracts ``features`` for every video into ``out_dir`` (see module docstring).

    Args:
        videos: video files and/or directories holding them.
        recursive: look for videos in the directories' subfolders too.
        allow_partial: extract the decodable part of a truncated or damaged video
            (its sidecar's duration is that part's) instead of failing it.
        out_dir: the FEATURES directory (``out_dir/<extractor>/<video_id>.*``).
        features: extractor names, e.g. ("pixels", "logmel") or "pixels,logmel".
        options: per extractor, its Config fields, e.g. {"clip": {"fps": 2.0}}.
        shard: (index, count) or "index/count": this job's part of the videos.
        workers: processes; 1 runs in this process.
        engine: runs the videos instead of this machine's processes (``workers`` is
            then unused), e.g. ``ray_engine.RayEngine(address="auto")``.
        retries: more tries for a video whose extractor raised an unexpected error
            (not a bad input, which would fail alike).
        overwrite: re-extract even complete outputs.
        webdataset: also pack the outputs into tar shards under out_dir/webdataset.
        shard_size: videos per webdataset tar.
        verbose: show a progress bar.

    Returns:
        An ExtractReport (``summary()`` prints it). Failures are reported there, not
        raised; bad arguments raise DensevidError before any work starts.
    """
    t0 = time.perf_counter()
    names = parse_feature_list(features)
    options = {k: dict(v) for k, v in (options or {}).items()}
    unknown = sorted(set(options) - set(names))
    if unknown:
        logger.debug("options for extractors not run: %s", ", ".join(unknown))
    index, count = parse_shard(shard)
    if workers < 1:
        raise DensevidError(f"workers must be >= 1, got {workers}")
    if retries < 0:
        raise DensevidError(f"retries must be >= 0, got {retries}")
    paths = videos_by_id(videos, recursive=recursive)[index::count]
    out = Path(out_dir)
    prepare_output_dir(out)
    for name in names:
        cache.remove_stale_tmp(out / name)

    # Build each extractor here once: bad options and missing packages/models fail
    # now, with one message, instead of once per video.
    extractors = {n: get_extractor(n, **options.get(n, {})) for n in names}
    for ex in extractors.values():
        preflight(ex)
        if not overwrite:
            _check_same_options(out, ex)

    job = ExtractJob(
        out,
        tuple(available_extractors()[n] for n in names),
        options,
        allow_partial=allow_partial,
        retries=retries,
    )
    report = ExtractReport(n_videos=len(paths))
    todo: list[tuple[Path, list[str]]] = []
    for p in paths:
        missing = [
            n for n in names if overwrite or not cache.has_features(out, n, p.stem)
        ]
        report.skipped += [(p.stem, n) for n in names if n not in missing]
        if missing:
            todo.append((p, missing))
    logger.info(
        "extracting %s for %d of %d videos%s",
        ",".join(names),
        len(todo),
        len(paths),
        f" (shard {index}/{count})" if count > 1 else "",
    )

    from tqdm import tqdm

    bar = tqdm(
        total=len(paths),
        initial=len(paths) - len(todo),
        unit="video",
        disable=not verbose,
        desc="extract",
    )

    def record(results: list[Result]) -> None:
        for vid, name, err in results:
            if err is None:
                report.done.append((vid, name))
            else:
                report.failed.append((vid, name, err))
                logger.warning("%s [%s]: %s", vid, name, err)
        bar.update(1)
        bar.set_postfix(failed=len(report.failed), refresh=False)

    from tqdm.contrib.logging import logging_redirect_tqdm

    # warnings go through tqdm.write so they do not tear the progress bar
    with logging_redirect_tqdm():
        try:
            if engine is not None:
                engine.run(todo, job, record)
            elif workers == 1 or len(todo) <= 1:
                for p, missing in todo:
                    record(job.process(p, extractors, missing))
            else:
                _run_pool(todo, job, workers, record)
        finally:
            bar.close()
    report.done.sort()
    return _finish(
        report, out, names, paths, (index, count), webdataset, shard_size, t0
    )


def check_features(
    videos: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    features: Sequence[str] | str = ("pixels",),
    *,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    shard: str | tuple[int, int] | None = None,
    recursive: bool = True,
    webdataset: bool = False,
    shard_size: int = WDS_MAXCOUNT,
) -> CheckReport:
    """Says whether a run split into jobs (``shard`` i/n each, a Slurm array) is
    complete: every video of ``videos`` with every stream of ``features``, made with
    ``options``. Reads the cache only; extracts nothing.

    Args are ``extract_features``'s; ``shard`` checks one job's share. With
    ``webdataset`` the complete videos are then packed as ``extract_features``
    packs them (one set of tars for all the videos when ``shard`` is None).

    Returns:
        A CheckReport: per video and stream, complete (``skipped``) or missing or
        made with other options (``failed``, with why).
    """
    t0 = time.perf_counter()
    names = parse_feature_list(features)
    index, count = parse_shard(shard)
    paths = videos_by_id(videos, recursive=recursive)[index::count]
    out = Path(out_dir)
    if not out.is_dir():
        raise DensevidError(f"{out}: no such FEATURES directory")
    report = CheckReport(n_videos=len(paths))
    for name in names:
        ex = get_extractor(name, **(options or {}).get(name, {}))
        wanted = json.loads(json.dumps(ex.describe()["config"]))
        found = {js.stem: c for js, c in cache.stored_configs(out / name)}
        for p in paths:
            vid = p.stem
            if not cache.has_features(out, name, vid):
                report.failed.append((vid, name, "missing"))
                continue
            stored = found.get(vid)
            diff = (
                option_differences(name, stored, wanted)
                if isinstance(stored, dict)
                else []  # a sidecar without a config: made before configs were kept
            )
            if diff:
                report.failed.append((vid, name, f"other options: {'; '.join(diff)}"))
            else:
                report.skipped.append((vid, name))
    return _finish(
        report, out, names, paths, (index, count), webdataset, shard_size, t0
    )


def _finish(
    report: ReportT,
    out: Path,
    names: list[str],
    paths: list[Path],
    shard: tuple[int, int],
    webdataset: bool,
    shard_size: int,
    t0: float,
) -> ReportT:
    """What ends extract and check alike: failures sorted, the webdataset tars of
    the videos packed when asked, the time taken."""
    report.failed.sort()
    if webdataset:
        report.shards = pack_webdataset(
            out, names, [p.stem for p in paths], shard=shard, maxcount=shard_size
        )
    report.seconds = time.perf_counter() - t0
    return report


def prepare_output_dir(out: Path) -> None:
    """Creates the FEATURES directory, or says in one line why it cannot be one,
    before any video is read."""
    if out.exists() and not out.is_dir():
        raise DensevidError(f"{out}: exists and is not a directory (-o takes a folder)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DensevidError(f"{out}: cannot create it ({e.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise DensevidError(f"{out}: not writable")


def preflight(ex: Extractor) -> None:
    """Loads what the extractor needs now (models, packages), if it can."""
    load = getattr(ex, "load", None)
    if callable(load):
        load()


def process_video(
    path: Path,
    out: Path,
    extractors: Mapping[str, Extractor],
    *,
    allow_partial: bool = False,
    retries: int = 0,
) -> list[Result]:
    """Runs each extractor on one video and writes its output.

    A truncated or damaged video fails (``video.decode_checked``) unless
    ``allow_partial``; then its outputs' duration is the part that could be decoded.
    An extractor that raised anything but a DensevidError (the input's fault, which
    another try would repeat) is tried again, up to ``retries`` more times.

    Returns (video id, extractor, None or the failure's one-line reason) per extractor.
    """
    results: list[Result] = []
    vid = path.stem
    for name, ex in extractors.items():
        err: str | None = None
        for attempt in range(1, retries + 2):
            try:
                _write_stream(path, out, name, ex, allow_partial)
                err = None
                break
            except DensevidError as e:
                err = str(e)
                break
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as e:  # noqa: BLE001 - one bad video must not stop a corpus
                logger.debug(
                    "%s [%s] failed, try %d", vid, name, attempt, exc_info=True
                )
                err = f"{type(e).__name__}: {e}"
                if retries:
                    err += f" ({plural(attempt, 'try', 'tries')})"
        results.append((vid, name, err))
    return results


def _write_stream(
    path: Path, out: Path, name: str, ex: Extractor, allow_partial: bool
) -> None:
    res, decoded = decode_checked(lambda: ex(path), path, allow_partial=allow_partial)
    if decoded is not None:
        res.meta["duration"] = decoded
    if res.is_speech:
        cache.save_speech(out, name, path.stem, res.segments or [], res.meta)
    else:
        if res.array is None:
            raise DensevidError(f"extractor '{name}' returned no array")
        cache.save_features(out, name, path.stem, res.array, res.meta)


# --- worker processes --------------------------------------------------------------

_WORKER: dict[str, Any] = {}  # this pool worker's job and extractors


def _init_worker(job: ExtractJob, n_threads: int) -> None:
    _WORKER["job"] = job
    _WORKER["extractors"] = start_worker(job, n_threads)


def _work(path: Path, missing: list[str]) -> list[Result]:
    return _WORKER["job"].process(path, _WORKER["extractors"], missing)


def _run_pool(
    todo: Sequence[tuple[Path, list[str]]],
    job: ExtractJob,
    workers: int,
    record: Callable[[list[Result]], None],
) -> None:
    n_threads = max(1, (os.cpu_count() or 1) // workers)
    # spawn, not fork: a forked torch (OpenMP threads, CUDA) can deadlock.
    with stoppable_pool(
        workers,
        initializer=_init_worker,
        initargs=(job, n_threads),
        start_method="spawn",
    ) as pool:
        futures = {pool.submit(_work, p, missing): (p, missing) for p, missing in todo}
        for fut in as_completed(futures):
            p, missing = futures[fut]
            try:
                record(fut.result())
            except Exception as e:  # noqa: BLE001 - a worker that died (OOM, crash)
                record(
                    [
                        (p.stem, n, f"worker failed: {type(e).__name__}: {e}")
                        for n in missing
                    ]
                )


# --- webdataset --------------------------------------------------------------------


def pack_webdataset(
    out: str | os.PathLike,
    names: Sequence[str],
    video_ids: Sequence[str],
    *,
    shard: tuple[int, int] = (0, 1),
    maxcount: int = WDS_MAXCOUNT,
) -> list[Path]:
    """Packs complete outputs into tar shards ``out/webdataset/<i>-<n>-<k>.tar``.

    A video goes in only when all ``names`` are complete for it. Shards are written
    under temporary names and renamed, so a reader never sees a half tar.
    """
    import webdataset as wds

    root = Path(out)
    dest = root / WDS_DIR
    dest.mkdir(parents=True, exist_ok=True)
    prefix = f"{shard[0]:05d}-{shard[1]:05d}"
    for old in dest.glob(f"{prefix}-*.tar"):
        old.unlink()
    tmp_pattern = str(dest / f".{prefix}-%06d.tar.tmp")
    written: list[str] = []
    with wds.ShardWriter(
        tmp_pattern, maxcount=maxcount, verbose=0, post=written.append
    ) as sink:
        for vid in video_ids:
            if not all(cache.has_features(root, n, vid) for n in names):
                continue
            sample: dict[str, Any] = {"__key__": vid}
            for n in names:
                npy, js = cache.feature_paths(root, n, vid)
                if npy.exists():
                    sample[f"{n}.npy"] = npy.read_bytes()
                sample[f"{n}.json"] = js.read_bytes()
            sink.write(sample)
    shards = []
    for tmp in written:
        final = Path(tmp[: -len(".tmp")])
        final = final.with_name(final.name.lstrip("."))
        os.replace(tmp, final)
        shards.append(final)
    return shards


def _check_same_options(out: Path, extractor: Extractor) -> None:
    """Refuses to add to (or skip as done) features of another configuration: a run
    with new options into an old directory would otherwise keep the old rows of
    every video already there, silently."""
    d = out / extractor.name
    if not d.is_dir():
        return
    wanted = json.loads(json.dumps(extractor.describe()["config"]))
    for js, found in cache.stored_configs(d):
        if not isinstance(found, dict):
            return
        diff = option_differences(extractor.name, found, wanted)
        if not diff:
            return
        raise DensevidError(
            f"{d} holds {extractor.name} features extracted with other options "
            f"({'; '.join(diff)}; {js.name}): write to another directory, or pass "
            "--overwrite to extract them all again"
        )

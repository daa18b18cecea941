"""Feature extraction on a Ray cluster: ``densevid extract --engine ray``.

``extract_features`` plans the run as ever (which streams of which videos are missing,
the summary, the webdataset shards); ``RayEngine`` only runs its videos on a cluster
instead of this machine's process pool. Each Ray worker is an actor that builds the
run's extractors once (a CLIP model once per actor, with a GPU of its own where the
cluster has GPUs) and extracts one video per call with the same ``process_video``
into the FEATURES directory, every file written atomically: the outputs are the
local run's files, byte for byte, and a killed run resumes as a local one does.

Failures: an extractor's unexpected error is tried again inside the worker
(``retries``); a worker that dies (killed, out of memory, its node lost) is restarted
by Ray, which runs its video again, up to ``retries`` times; past that the video is
recorded as failed, with why, and the run goes on.

Every node must see the videos and FEATURES at the same paths (a shared file system)
and have densevid installed with the same extractors.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from densevid.errors import DensevidError
from densevid.features.extract import ExtractJob, Result, start_worker

logger = logging.getLogger(__name__)

IN_FLIGHT_PER_WORKER = 2  # calls queued at each worker: its next video is waiting
LOCAL_OBJECT_STORE_BYTES = 128 * 2**20  # results are a few lines; arrays go to disk
# Ray's rule for macOS and Windows (one machine, loopback address) made a local run's:
# read by ray at import, and its module constant, for a ray imported before
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def import_ray() -> ModuleType:
    """The ``ray`` package, or one line saying how to install it."""
    try:
        import ray
    except ImportError as e:
        raise DensevidError(
            "--engine ray needs Ray: pip install 'densevid[ray]'"
        ) from e
    return ray


@dataclass
class RayEngine:
    """Runs an extraction's videos on Ray (``extract_features(..., engine=...)``).

    Args:
        address: a running cluster's ("auto", "HOST:PORT"); None starts a Ray of
            this machine only, on the loopback address, with no dashboard, for the
            run. A process already connected to Ray (``ray.init``) uses that one.
        workers: actors; None: one per CPU of the cluster, or per GPU when an
            extractor has a model and the cluster has GPUs.
    """

    address: str | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        import_ray()
        if self.workers is not None and self.workers < 1:
            raise DensevidError(f"workers must be >= 1, got {self.workers}")

    def run(
        self,
        todo: Sequence[tuple[Path, list[str]]],
        job: ExtractJob,
        record: Callable[[list[Result]], None],
    ) -> None:
        """Extracts ``todo`` on the cluster; see ``extract.Engine``."""
        if not todo:
            return
        ray = import_ray()
        owned = not ray.is_initialized()
        if owned:
            self._connect(ray)
        try:
            run_on_cluster(ray, todo, job, record, self.workers)
        finally:
            if owned:
                ray.shutdown()

    def _connect(self, ray: ModuleType) -> None:
        quiet = {"logging_level": logging.ERROR, "include_dashboard": False}
        if self.address is None:
            with loopback_only(ray):
                ray.init(
                    address="local",
                    num_cpus=self.workers or os.cpu_count() or 1,
                    object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                    **quiet,
                )
            return
        try:
            ray.init(address=self.address, **quiet)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise DensevidError(
                f"cannot join the Ray cluster at {self.address}: {first_line(e)}"
            ) from e


class VideoWorker:
    """One Ray actor: the run's extractors, built once, and one video per call."""

    def __init__(self, job: ExtractJob, n_threads: int) -> None:
        self.job = job
        self.extractors = start_worker(job, n_threads)

    def ready(self) -> int:
        """Answers once the extractors are built: its process id."""
        return os.getpid()

    def process(self, path: str, missing: list[str]) -> list[Result]:
        return self.job.process(Path(path), self.extractors, missing)


def run_on_cluster(
    ray: ModuleType,
    todo: Sequence[tuple[Path, list[str]]],
    job: ExtractJob,
    record: Callable[[list[Result]], None],
    workers: int | None = None,
) -> None:
    """Starts the actors and feeds each its next video as it finishes one.

    A worker gets videos only once it has started, so an actor the cluster has no
    room for holds none back. Raises DensevidError when no worker could start.
    """
    from ray.exceptions import RayActorError, RayError

    job = dataclasses.replace(job, out=job.out.absolute())
    resources = ray.cluster_resources()
    n_gpus = int(resources.get("GPU", 0))
    use_gpu = n_gpus > 0 and any(info.weights != "none" for info in job.infos)
    capacity = n_gpus if use_gpu else max(1, int(resources.get("CPU", 1)))
    n_workers = max(1, min(workers or capacity, len(todo)))
    actor = ray.remote(VideoWorker).options(
        num_cpus=1,
        num_gpus=1 if use_gpu else 0,
        max_restarts=-1,  # a killed worker comes back; each video's tries are bounded
        max_task_retries=job.retries,
    )
    logger.info(
        "Ray: %d workers%s for %d videos",
        n_workers,
        " with a GPU each" if use_gpu else "",
        len(todo),
    )
    starting = {}
    for _ in range(n_workers):
        a = actor.remote(job, 1)
        starting[a.ready.remote()] = a
    pending = deque((p.absolute(), missing) for p, missing in todo)
    in_flight: dict[Any, tuple[Any, Path, list[str]]] = {}
    not_started: list[str] = []

    def submit(worker: Any) -> None:
        if pending:
            path, missing = pending.popleft()
            ref = worker.process.remote(str(path), missing)
            in_flight[ref] = (worker, path, missing)

    while in_flight or (pending and starting):
        [ref], _ = ray.wait([*starting, *in_flight], num_returns=1)
        if ref in starting:
            worker = starting.pop(ref)
            try:
                ray.get(ref)
            except RayError as e:
                not_started.append(first_line(e))
                logger.warning("a Ray worker did not start: %s", first_line(e))
                continue
            for _ in range(IN_FLIGHT_PER_WORKER):
                submit(worker)
            continue
        worker, path, missing = in_flight.pop(ref)
        try:
            record(ray.get(ref))
        except RayActorError as e:
            if e.actor_init_failed:  # restarted where it cannot start: not the video's
                not_started.append(first_line(e))
                pending.appendleft((path, missing))
                continue
            why = f"its worker died ({job.retries + 1} tries): {first_line(e)}"
            record([(path.stem, n, why) for n in missing])
        except RayError as e:
            record([(path.stem, n, first_line(e)) for n in missing])
        submit(worker)
    if pending:
        raise DensevidError(
            f"no Ray worker could start: {not_started[0] if not_started else '?'}"
        )


@contextmanager
def loopback_only(ray: ModuleType) -> Iterator[None]:
    """Makes the Ray started here advertise and listen on 127.0.0.1 only: on Linux
    Ray otherwise takes the machine's network address and listens on every
    interface, which a run on one machine has no use for."""
    from ray._private import ray_constants

    before = os.environ.get(LOOPBACK_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[LOOPBACK_ENV] = "0"  # for the processes ray.init starts
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if before[0] is None:
            os.environ.pop(LOOPBACK_ENV, None)
        else:
            os.environ[LOOPBACK_ENV] = before[0]
        ray_constants.ENABLE_RAY_CLUSTER = before[1]


def first_line(e: BaseException) -> str:
    """An exception as one line: Ray's errors span many."""
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]

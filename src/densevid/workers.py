"""Worker pools that stop when the user stops them.

A plain ``ProcessPoolExecutor`` keeps going through its whole queue after Ctrl-C
(leaving the pool's ``with`` block waits for every queued task), and its workers
outlive a main process killed by SIGKILL. ``stoppable_pool`` gives ``extract`` and
``synth`` the behaviour a user expects: the main process alone decides what stops,
an interrupt cancels the queue and ends the workers at once, and a worker whose main
process is gone exits by itself. Work in progress is lost, never half-written: the
workers write every file atomically.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Any

PARENT_CHECK_S = 1.0  # how often a worker looks whether its main process still lives
JOIN_TIMEOUT_S = 5.0  # how long ending a worker may take before it is left


@contextmanager
def stoppable_pool(
    workers: int,
    *,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
    start_method: str | None = None,
) -> Iterator[ProcessPoolExecutor]:
    """A process pool that is ended, queue and workers, when its block is left by
    an exception (KeyboardInterrupt, SIGTERM turned into one, an error).

    Args:
        workers: processes.
        initializer, initargs: run in each worker first (module-level, picklable).
        start_method: "spawn", "fork"...; None: the platform's default.
    """
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=get_context(start_method),
        initializer=_init_worker,
        initargs=(os.getpid(), initializer, initargs),
    )
    try:
        yield pool
    except BaseException:
        terminate(pool)
        raise
    pool.shutdown()


def terminate(pool: ProcessPoolExecutor) -> None:
    """Cancels what is queued and ends the workers now."""
    processes = list((pool._processes or {}).values())  # no public handle on them
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        proc.terminate()
    for proc in processes:
        proc.join(timeout=JOIN_TIMEOUT_S)


def _init_worker(
    parent: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]
) -> None:
    # Ctrl-C reaches the whole process group; the main process decides what stops,
    # so a worker neither dies mid-task with a traceback of its own nor goes on
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    if initializer is not None:
        initializer(*initargs)


def _exit_with_parent(parent: int) -> None:
    """Ends this worker soon after its main process is gone (killed by SIGKILL, it
    could not end its workers, which would otherwise go on through their queue)."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(1)

"""Execution backends: run independent tasks in-process, in a process pool, or on Dask.

One code path for every backend: :func:`run_tasks` applies a picklable function
to each task, and hands each result (or failure) to callbacks *in the calling
process* as it arrives, in completion order. Nothing a task computes depends on
which backend, worker or order ran it: a task carries all its seeds (see
:mod:`simulations.study`), so the three backends give identical results.

* ``in-process`` (default): a plain loop; the only backend that can show
  per-task progress (its function may drive a progress bar).
* ``pool``: a local :class:`concurrent.futures.ProcessPoolExecutor` with
  ``workers`` processes started with ``spawn`` (safe with torch's threads);
  each worker limits torch to ``max(1, cpu_count // workers)`` threads.
* ``dask``: Dask distributed; a :class:`distributed.LocalCluster` of ``workers``
  single-threaded worker processes on the loopback interface, or an existing
  cluster at ``scheduler`` (for example one started by dask-jobqueue on SLURM).
  A task whose worker dies is rescheduled by the Dask scheduler on another
  worker (up to ``distributed.scheduler.allowed-failures`` times, default 3).

Results always come back to the calling process, which alone writes them (one
writer per study folder, whatever the backend).

**Signals.** Inside :func:`interruptible`, SIGINT and SIGTERM raise
:class:`Interrupted` in the calling process; :func:`shielded` defers them while a
finished result is being stored. The ``pool`` backend's workers ignore SIGINT
(a terminal's Ctrl-C reaches the whole process group) and are terminated by the
caller, so every worker stops within a fraction of a second; results that had
already arrived are still handed to ``on_result`` before the interrupt goes on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import closing
from dataclasses import dataclass
from enum import StrEnum
from multiprocessing import get_context
from typing import Any, TypeVar

from ssbnn_theory.enums import parse_enum
from ssbnn_theory.errors import InvalidParameterError

__all__ = [
    "Backend",
    "Execution",
    "Failure",
    "Interrupted",
    "Outcome",
    "interruptible",
    "run_tasks",
    "shielded",
]

T = TypeVar("T")
R = TypeVar("R")


class Backend(StrEnum):
    """Where the tasks of a study run."""

    IN_PROCESS = "in-process"
    """In the calling process, one task after another."""
    POOL = "pool"
    """A local pool of ``workers`` processes."""
    DASK = "dask"
    """Dask distributed: a local cluster, or an existing one at ``scheduler``."""


@dataclass(frozen=True)
class Execution:
    """How to run a study's tasks.

    Attributes
    ----------
    backend
        :class:`Backend` (or its string value).
    workers
        Number of worker processes for ``pool`` and for a local Dask cluster
        (default: ``os.cpu_count()``); must be ``None`` for ``in-process`` and
        when joining a cluster with ``scheduler``.
    scheduler
        Address of a running Dask scheduler (``tcp://host:8786``); ``dask`` only.
    fail_fast
        Stop at the first failed task (cancel the rest) instead of running on.
    """

    backend: Backend | str = Backend.IN_PROCESS
    workers: int | None = None
    scheduler: str | None = None
    fail_fast: bool = False

    def __post_init__(self) -> None:
        backend = parse_enum(Backend, self.backend, "backend")
        object.__setattr__(self, "backend", backend)
        if self.workers is not None:
            if isinstance(self.workers, bool) or not isinstance(self.workers, int):
                raise InvalidParameterError("workers", "a positive integer", self.workers)
            if self.workers < 1:
                raise InvalidParameterError("workers", "a positive integer", self.workers)
            if backend is Backend.IN_PROCESS:
                raise InvalidParameterError(
                    "workers", "unset for the in-process backend", self.workers
                )
            if self.scheduler is not None:
                raise InvalidParameterError(
                    "workers", "unset when joining a Dask scheduler", self.workers
                )
        if self.scheduler is not None:
            if backend is not Backend.DASK:
                raise InvalidParameterError(
                    "scheduler", "set only with the dask backend", self.scheduler
                )
            if not isinstance(self.scheduler, str) or not self.scheduler.strip():
                raise InvalidParameterError(
                    "scheduler", "a Dask scheduler address such as tcp://host:8786", self.scheduler
                )

    def check_scheduler(self, timeout: float = 5.0) -> None:
        """Fail fast when ``scheduler`` (a ``tcp://host:port`` address) accepts no connection.

        Other protocols (``tls://``, ``ucx://``, ...) are left to Dask.

        Raises
        ------
        InvalidParameterError
            ``scheduler`` when nothing listens at the address within ``timeout`` seconds.
        """
        address = self.scheduler
        if address is None:
            return
        text = address.strip()
        if "://" in text and not text.startswith("tcp://"):
            return
        host, _, port = text.removeprefix("tcp://").rpartition(":")
        host = host.strip("[]")
        try:
            number = int(port)
        except ValueError:
            raise InvalidParameterError(
                "scheduler", "a Dask scheduler address such as tcp://host:8786", address
            ) from None
        try:
            with socket.create_connection((host or "127.0.0.1", number), timeout=timeout):
                pass
        except (OSError, OverflowError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise InvalidParameterError(
                "scheduler", f"the address of a running Dask scheduler ({reason})", address
            ) from None

    @property
    def worker_count(self) -> int:
        """Workers of a pool or local cluster: ``workers``, else the machine's CPU count."""
        return self.workers if self.workers is not None else max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Failure:
    """A task that raised, or whose worker was lost.

    Attributes
    ----------
    key
        The task's key (for a study: its cell id).
    error
        One line: ``ExceptionType: message``.
    details
        The full traceback text where one is available.
    """

    key: str
    error: str
    details: str


@dataclass(frozen=True)
class Outcome:
    """Keys of the tasks that completed, failed, or were not run (``fail_fast``)."""

    completed: tuple[str, ...]
    failed: tuple[Failure, ...]
    cancelled: tuple[str, ...]


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived inside :func:`interruptible`; ``signum`` says which.

    A :class:`KeyboardInterrupt`, so that callers that stop on Ctrl-C stop on it too.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_status(self) -> int:
        """The shell's status for death by this signal: 130 (SIGINT), 143 (SIGTERM)."""
        return 128 + self.signum


_STATE = threading.local()


def _handler(signum: int, frame: object) -> None:
    if getattr(_STATE, "shield", 0):
        _STATE.pending = signum
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` inside the block (main thread only).

    The previous handlers come back on exit. Elsewhere than the main thread
    (where Python cannot install handlers) the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    _STATE.shield, _STATE.pending = 0, None
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Defer :class:`Interrupted` to the end of the block (a result being stored)."""
    _STATE.shield = getattr(_STATE, "shield", 0) + 1
    try:
        yield
    finally:
        _STATE.shield -= 1
        pending = getattr(_STATE, "pending", None)
        if not _STATE.shield and pending is not None:
            _STATE.pending = None
            raise Interrupted(pending)


def run_tasks(
    tasks: Sequence[T],
    fn: Callable[[T], R],
    *,
    key: Callable[[T], str],
    execution: Execution | None = None,
    on_result: Callable[[T, R], None],
    on_failure: Callable[[T, Failure], None] | None = None,
) -> Outcome:
    """Apply ``fn`` to every task on the chosen backend; report each outcome as it arrives.

    Parameters
    ----------
    tasks
        Independent, picklable tasks.
    fn
        Module-level (picklable) function of one task; for ``pool`` it must be
        importable by name in a fresh interpreter.
    key
        Unique key of a task, used in failures and as the Dask task key.
    execution
        Backend and its options; default in-process.
    on_result, on_failure
        Called in this process, in completion order, with the task and its
        result or :class:`Failure`. An exception raised by ``on_result`` (for
        example a full disk) stops the run and propagates.

    Returns
    -------
    Outcome
        Completed, failed and cancelled keys.
    """
    execution = execution or Execution()
    keys = [key(task) for task in tasks]
    if len(set(keys)) != len(keys):
        raise InvalidParameterError("tasks", "tasks with distinct keys", "duplicate keys")
    runner = {
        Backend.IN_PROCESS: _in_process,
        Backend.POOL: _pool,
        Backend.DASK: _dask,
    }[Backend(execution.backend)]
    completed: list[str] = []
    failed: list[Failure] = []
    pending = dict(zip(keys, tasks, strict=True))
    with closing(runner(dict(pending), fn, execution)) as events:
        for k, result, failure in events:
            task = pending.pop(k)
            if failure is None:
                on_result(task, result)
                completed.append(k)
                continue
            failed.append(failure)
            if on_failure is not None:
                on_failure(task, failure)
            if execution.fail_fast:
                break
    return Outcome(tuple(completed), tuple(failed), tuple(pending))


_Event = tuple[str, Any, Failure | None]
_Fn = Callable[[Any], Any]


def _failure(key: str, exc: BaseException, details: str | None = None) -> Failure:
    message = " ".join(str(exc).split()) or "(no message)"
    text = details if details is not None else "".join(traceback.format_exception(exc))
    return Failure(key, f"{type(exc).__name__}: {message}", text)


def _in_process(
    tasks: dict[str, Any], fn: Callable[[Any], Any], execution: Execution
) -> Iterator[_Event]:
    for k, task in list(tasks.items()):
        try:
            result = fn(task)
        except Exception as exc:
            yield k, None, _failure(k, exc)
        else:
            yield k, result, None


def _limit_torch_threads(threads: int) -> None:
    """Pool worker initialiser: share the machine's cores among the workers; ignore SIGINT.

    A terminal's Ctrl-C reaches the whole process group; the parent, not each
    worker, decides what to stop (it terminates the workers).
    """
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)


def _stop_workers(executor: ProcessPoolExecutor, grace: float = 1.0) -> None:
    """Terminate the pool's worker processes now (SIGTERM, then SIGKILL after ``grace`` s)."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(grace)
            if process.is_alive():
                process.kill()
                process.join(grace)


def _pool(tasks: dict[str, Any], fn: _Fn, execution: Execution) -> Iterator[_Event]:
    workers = min(execution.worker_count, max(1, len(tasks)))
    threads = max(1, (os.cpu_count() or 1) // workers)
    executor = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=get_context("spawn"),
        initializer=_limit_torch_threads,
        initargs=(threads,),
    )
    finished = False
    futures: dict[Future[Any], str] = {}
    remaining: set[Future[Any]] = set()

    def outcome(future: Future[Any]) -> _Event:
        k = futures[future]
        exc = future.exception()
        return (k, future.result(), None) if exc is None else (k, None, _failure(k, exc))

    try:
        futures = {executor.submit(fn, t): k for k, t in tasks.items()}
        remaining = set(futures)
        while remaining:
            done, remaining = wait(remaining, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                yield outcome(future)
        finished = True
    except Interrupted:
        # keep what had arrived: results already back are handed on before the interrupt
        arrived = [f for f in remaining if f.done() and not f.cancelled()]
        _stop_workers(executor)
        for future in arrived:
            if future.exception() is None:
                yield outcome(future)
        raise
    finally:
        if finished:
            executor.shutdown(wait=True)
        else:  # interrupted, fail_fast or a storing error: stop the workers, do not wait
            _stop_workers(executor)


def _kill_local_dask_workers(cluster: Any) -> None:
    """Stop a local Dask cluster's worker processes now, without waiting for running cells.

    Each nanny is first marked as closing, so that it closes instead of restarting
    the worker it sees die; then the worker processes are killed.
    """
    import multiprocessing

    from distributed.core import Status

    for nanny in list(getattr(cluster, "workers", {}).values()):
        with contextlib.suppress(Exception):
            nanny.status = Status.closing_gracefully
    workers = [
        p for p in multiprocessing.active_children() if p.name.startswith("Dask Worker process")
    ]
    for process in workers:
        with contextlib.suppress(Exception):
            process.kill()
    for process in workers:
        with contextlib.suppress(Exception):
            process.join(1.0)


def _dask(tasks: dict[str, Any], fn: _Fn, execution: Execution) -> Iterator[_Event]:
    from distributed import Client, LocalCluster, as_completed

    if execution.scheduler is not None:
        cluster = None
        client = Client(execution.scheduler)
    else:
        cluster = LocalCluster(
            n_workers=min(execution.worker_count, max(1, len(tasks))),
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # any free port: never 8787, which may be taken
        )
        client = Client(cluster)
    futures: dict[Any, str] = {}
    finished = False
    try:
        futures = {
            client.submit(fn, task, key=f"ssbnn-{k}", pure=False): k for k, task in tasks.items()
        }
        # with_results: a result is fetched as its task finishes; if the worker holding it
        # dies first, the gather waits for the scheduler's recomputation
        for future, result in as_completed(list(futures), with_results=True, raise_errors=False):
            k = futures.pop(future)
            if future.status == "error":
                _, exc, tb = result
                details = "".join(traceback.format_exception(type(exc), exc, tb))
                yield k, None, _failure(k, exc, details)
            elif future.cancelled():
                reason = RuntimeError("cancelled by the Dask scheduler")
                yield k, None, _failure(k, reason)
            else:
                future.release()  # the scheduler forgets it: a lost worker won't recompute it
                yield k, result, None
        finished = True
    finally:
        if cluster is not None and not finished:
            _kill_local_dask_workers(cluster)  # a signal or fail_fast: do not wait for cells
        # a generator closed early (fail_fast, a signal) cancels what is queued or running
        with contextlib.suppress(Exception):
            client.cancel(list(futures))
        with contextlib.suppress(Exception):
            client.close(timeout=2)
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close(timeout=2)

"""Independent jobs on every core: corpus items, benchmark pairs, the files of a folder.

``imap(fn, items, jobs)`` calls ``fn(item)`` for each item in ``jobs`` worker processes and yields
``(index, result, error)`` as each finishes, under one progress bar. ``jobs=1`` runs in this
process, one item after another. A job that raises is yielded with its error and the others go
on. Every job runs with one thread (torch, BLAS, numba; :func:`limited_threads`) unless told
otherwise, in the workers and in this process alike: the thread count changes float sums, and the
results must not depend on ``jobs``.

Workers are forked from a fork server that imported the package once (``forkserver``: torch's
thread pools are not safe to fork from a process that has used them; ``spawn`` where there is no
fork server). Ctrl-C, SIGTERM and SIGHUP stop the workers the way they stop this process: each
unwinds (removing its partial output files) and exits.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from gan_stretch.errors import GanStretchError


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def check_jobs(jobs: int | None) -> int:
    """``jobs`` as given (None: every core); fewer than 1 is an error."""
    if jobs is None:
        return default_jobs()
    if int(jobs) < 1:
        raise GanStretchError(f"--jobs must be at least 1, got {jobs}")
    return int(jobs)


class Stopped(KeyboardInterrupt):
    """Ctrl-C, SIGTERM or SIGHUP in a worker: its job unwinds and the worker exits."""


_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


def _stop(signum, frame):
    # the first signal unwinds the job (its cleanup removes partial files); later ones (Ctrl-C
    # reaches every process of the group, then this process's parent sends SIGTERM) must not
    # interrupt that cleanup
    for sig in _SIGNALS:
        signal.signal(sig, _ignore)  # not SIG_IGN: a signal already pending would print an OSError
    raise Stopped(signum)


def _ignore(signum, frame):
    pass


_BUSY = [False]  # whether this worker is running a job (its partial files need unwinding)


def _worker_init(threads: int, init: Callable | None, initargs: tuple) -> None:
    _limit_threads(threads)  # for the life of the worker
    for sig in _SIGNALS:
        signal.signal(sig, _stop)
    threading.Thread(target=_watch_parent, name="gan-stretch-parent-watch", daemon=True).start()
    if init is not None:
        init(*initargs)


def _watch_parent() -> None:
    """Ends this worker when the process that started the pool ends, however it ended (``kill -9``
    leaves no time to stop its workers): multiprocessing hands each worker a pipe whose other end
    only that process holds, so the pipe closes with it. A running job unwinds as on SIGTERM
    (removing its partial file); an idle worker exits at once. Without this the workers would
    finish the batch, then wait for jobs for ever."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    parent.join()
    if _BUSY[0]:
        os.kill(os.getpid(), signal.SIGTERM)  # the job's Stopped unwinds it, then _call exits
        time.sleep(30)  # a job stuck in native code that never returns to Python
    _exit(1)


def _exit(code: int) -> None:
    """``os._exit`` (a worker must not run the pool's exit handlers), after multiprocessing's
    finalizers: they unlink the named semaphores this process made (numba makes one when its
    threads start), which the resource tracker would otherwise report as leaked."""
    from multiprocessing import util

    try:
        util._run_finalizers(0)
    except Exception:
        pass
    os._exit(code)


def _call(fn: Callable, item):
    _BUSY[0] = True
    try:
        return fn(item)
    except KeyboardInterrupt:  # stopped: the job's cleanup has run; take no further job
        _exit(130)
    finally:
        _BUSY[0] = False


def _thread_env(threads: int) -> dict:
    """Read by BLAS and OpenMP when they load: libraries a job loads late (scipy's BLAS) get the
    same count."""
    return {k: str(threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


@contextlib.contextmanager
def _environ(values: dict):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _import_env() -> dict:
    """The environment that makes the fork server import what this process imports.

    The server starts as ``python -c``, whose first import path is the current folder, and
    multiprocessing does not hand it this process's path: run from a checkout's root, a script of
    another checkout (a worktree, a snapshot) got its workers importing the current folder's
    ``gan_stretch``, not its own. The server gets this process's import path (PYTHONPATH) and no
    current folder in front of it (PYTHONSAFEPATH, Python 3.11+)."""
    return {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "PYTHONSAFEPATH": "1"}


def _context(threads: int):
    """The fork server (started with the thread settings and this process's import path, torch and
    numba imported), else spawn (which imports as this process does)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        from multiprocessing import forkserver

        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["gan_stretch", "numba"])  # imported once, in the server
        with _environ({**_thread_env(threads), **_import_env()}):
            forkserver.ensure_running()
        return ctx
    return multiprocessing.get_context("spawn")


def _limit_threads(n: int) -> tuple:
    """Sets torch, numba and BLAS/OpenMP to ``n`` threads; returns what restores them."""
    import numba
    import torch
    from threadpoolctl import threadpool_limits

    before = (torch.get_num_threads(), numba.get_num_threads())
    torch.set_num_threads(n)
    numba.set_num_threads(n)
    return before, threadpool_limits(n)


@contextlib.contextmanager
def limited_threads(n: int = 1):
    """torch, BLAS/OpenMP (numpy, scipy) and numba (ViSQOL's kernels) at ``n`` threads each; the
    previous counts afterwards. A job's floats then do not depend on how many jobs run at once,
    and processes sharing the cores do not make each other's thread pools spin and wait (on a busy
    machine, one 4801-lag correlation of short vectors took 3 s with two BLAS threads)."""
    import numba
    import torch

    (threads, numba_threads), blas = _limit_threads(n)
    try:
        with _environ(_thread_env(n)):
            yield
    finally:
        blas.restore_original_limits()
        torch.set_num_threads(threads)
        numba.set_num_threads(numba_threads)


def imap(
    fn: Callable,
    items: Iterable,
    jobs: int,
    desc: str = "",
    unit: str = "it",
    init: Callable | None = None,
    initargs: tuple = (),
    threads: int = 1,
) -> Iterator[tuple[int, object, BaseException | None]]:
    """Yields ``(index, fn(item), None)`` or ``(index, None, error)`` for each item, as jobs finish.

    ``fn``, ``init`` and the items must pickle (module-level functions, plain data) when
    ``jobs > 1``. ``init(*initargs)`` runs once per worker before its first job (load a model once,
    not per job), and once in this process when ``jobs == 1``. Every job runs with ``threads``
    threads (:func:`limited_threads`). Stop iterating (``break``) to cancel the jobs not yet
    started.
    """
    from tqdm import tqdm

    items = list(items)
    jobs = max(1, min(jobs, len(items)))
    # no bar where stderr is a log file or a pipe (its redraws would fill it); messages still go there
    with tqdm(total=len(items), desc=desc, unit=unit, disable=not items or not sys.stderr.isatty()) as bar:
        if jobs == 1:
            with limited_threads(threads):
                if init is not None:
                    init(*initargs)
                for i, item in enumerate(items):
                    try:
                        result, error = fn(item), None
                    except Exception as e:
                        result, error = None, e
                    bar.update()
                    yield i, result, error
            return
        pool = ProcessPoolExecutor(
            jobs, mp_context=_context(threads), initializer=_worker_init, initargs=(threads, init, initargs)
        )
        try:
            with _environ(_thread_env(threads)):  # spawned workers start here
                pending = {pool.submit(_call, fn, item): i for i, item in enumerate(items)}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=pending.get):
                    i = pending.pop(future)
                    error = future.exception()
                    bar.update()
                    yield i, (None if error else future.result()), error
        except GeneratorExit:  # the caller stopped early: the running jobs finish, the rest are cancelled
            raise
        except BaseException:  # Ctrl-C, SIGTERM: the workers stop too
            _stop_workers(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """SIGTERM to each worker (each unwinds its job and exits), then wait for them."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for p in procs:
        if p.is_alive():
            try:
                os.kill(p.pid, signal.SIGTERM)
            except (OSError, AttributeError):
                pass
    for p in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.kill()


def describe(error: BaseException) -> str:
    """One line for a failed job: the message of a project error, else the type and message."""
    from concurrent.futures.process import BrokenProcessPool

    if isinstance(error, GanStretchError):
        return str(error)
    if isinstance(error, BrokenProcessPool):
        return "a worker process died (killed, out of memory, or it could not start: see above)"
    return f"{type(error).__name__}: {error}"

"""Where the grid's training jobs run: in this process (the default) or on a Dask cluster.

At the paper's scale (ten models x three structures x three regimes, hundreds of epochs) training is
almost all of the study's cost, and every run is independent. `run_grid` sends the runs of
`fmlib.grid.training_jobs` to an executor:

- ``"serial"``: one after the other in this process;
- ``"dask"``: to an existing Dask distributed scheduler (``scheduler="tcp://host:8786"``; a
  ``dask-jobqueue`` SLURM/PBS cluster or a Kubernetes Dask cluster plug in through their scheduler
  address), or to a ``distributed.LocalCluster`` started here with one single-threaded worker per
  core.

Jobs are idempotent and named by their training cache key (`fmlib.training.training_key`): a
finished job is never re-run (its checkpoint is in the cache), a job that a worker loses is re-run
(Dask reschedules it; an interrupted training resumes from its last epoch). Workers write to one
checkpoint cache, which must be a folder they all see (``$FMROBUST_CACHE`` on a shared file system
for a multi-machine cluster). The notebooks then find every model in the cache: executing them stays
papermill's job, whatever computed the grid.

Results do not depend on the executor, provided each job runs with the same number of torch threads
(`threads_per_job`): float sums are reduced in an order that depends on the thread count, so the
same seeds with 1 and 2 threads give weights that differ in their last bits.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ._checks import check_choice, check_int

if TYPE_CHECKING:  # annotations only
    import pandas

    from .grid import TrainingJob

EXECUTORS = ("serial", "dask")
#: Seconds to wait for a scheduler before reporting that none answers.
CONNECT_TIMEOUT_S = 10


class ExecutorError(RuntimeError):
    """The executor could not run the grid (no scheduler at the address, a job failed, ...)."""


def job_key(job: "TrainingJob") -> str:
    """The Dask task name of `job`: its training cache key, so the same job has the same name everywhere."""
    from .training import training_key

    return f"train-{job.model}-{job.structure}-{training_key(job.model, job.width, job.data, job.config)}"


def _done_file(job: "TrainingJob", cache: str) -> Path:
    from .training import _folder

    return _folder(job.model, job.width, job.data, job.config, cache)[1] / "done.json"


def _row(job: "TrainingJob", status: str, best_val_iou: float, train_time_s: float, worker_pid: int | None) -> dict:
    return {"job": job_key(job), "model": job.model, "structure": job.structure, "regime": job.regime,
            "status": status, "best_val_iou": best_val_iou, "train_time_s": train_time_s, "worker_pid": worker_pid}


def cached_row(job: "TrainingJob", cache: str) -> dict:
    """The report row of a finished job, read from its ``done.json`` (the model is not loaded)."""
    import json

    done = json.loads(_done_file(job, cache).read_text())
    return _row(job, "cached", done["best_val_iou"], done["train_time_s"], None)


def train_job(job: "TrainingJob", cache: str, threads: int) -> dict:
    """Run one training job with `threads` torch threads (idempotent: a finished job is loaded from
    the cache, an interrupted one resumes). Returns a row of the grid's report."""
    import torch

    from .training import train

    status = "cached" if _done_file(job, cache).exists() else "trained"
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        result = train(job.model, job.data, job.config, width=job.width, cache=cache, progress=False)
    finally:
        torch.set_num_threads(previous)
    return _row(job, status, result.best_val_iou, result.train_time_s, os.getpid())


def connect(scheduler: str | None = None, *, n_workers: int | None = None):
    """A `distributed.Client`: to the scheduler at `scheduler`, or to a new `LocalCluster` with
    `n_workers` single-threaded worker processes (default: one per core). Raises ExecutorError
    within `CONNECT_TIMEOUT_S` seconds when no scheduler answers at `scheduler`."""
    import logging

    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            return Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as err:
            raise ExecutorError(f"scheduler: no Dask scheduler answered at {scheduler!r} within {CONNECT_TIMEOUT_S} s "
                                f"({type(err).__name__}: {err}); start one (`dask scheduler`, dask-jobqueue, "
                                "dask-kubernetes) and pass its address, or leave the scheduler out to start a "
                                "local cluster") from None
    n_workers = check_int("n_workers", n_workers if n_workers is not None else os.cpu_count() or 1, low=1)
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR)
    return Client(cluster)


def run_grid(cfg, *, executor: str = "serial", scheduler: str | None = None, n_workers: int | None = None,
             threads_per_job: int | None = None, cache: str | Path | None = None, client=None,
             on_result: Callable[[dict], None] | None = None, progress: bool = True) -> "pandas.DataFrame":
    """Train every job of the study configuration `cfg` that is not cached yet; one report row per job.

    Parameters
    ----------
    cfg : fmlib.study.Config
    executor : {"serial", "dask"}
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); without it, ``"dask"`` starts a
        `LocalCluster` of `n_workers` (default: one per core).
    threads_per_job : int, optional
        Torch threads of each job: default all of this process's for ``"serial"``, one for
        ``"dask"`` (one job per core). Identical results need the same value (module docstring).
    cache : path, optional
        The checkpoint cache (default `fmlib.training.cache_dir`); every worker must see it.
    client : distributed.Client, optional
        Use this client instead of connecting (then `scheduler` and `n_workers` are ignored).
    on_result : callable, optional
        Called with each report row as its job finishes.
    """
    import pandas as pd
    import torch
    from tqdm.auto import tqdm

    from .grid import training_jobs
    from .training import cache_dir

    check_choice("executor", executor, EXECUTORS)
    cache = str(Path(cache if cache is not None else cache_dir()).resolve())
    threads = check_int("threads_per_job", threads_per_job if threads_per_job is not None else (
        torch.get_num_threads() if executor == "serial" else 1), low=1)
    jobs = training_jobs(cfg)
    finished = [_done_file(job, cache).exists() for job in jobs]
    rows = [cached_row(job, cache) for job, done in zip(jobs, finished) if done]  # never sent anywhere
    todo = [job for job, done in zip(jobs, finished) if not done]
    bar = tqdm(total=len(todo), desc=f"training grid ({executor})", unit="model", disable=not progress)
    start = time.perf_counter()
    try:
        if executor == "serial":
            for job in todo:
                rows.append(train_job(job, cache, threads))
                on_result and on_result(rows[-1])
                bar.update()
        elif todo:
            own = client is None
            client = client if client is not None else connect(scheduler, n_workers=n_workers)
            try:
                from distributed import as_completed

                # retries: a job that raises (an out-of-memory worker, say) is tried again; a job on a
                # worker that dies is rescheduled by the scheduler itself.
                futures = [client.submit(train_job, job, cache, threads, key=job_key(job), pure=False, retries=2)
                           for job in todo]
                for future in as_completed(futures):
                    try:
                        rows.append(future.result())
                    except Exception as err:  # noqa: BLE001 - reported with the job's name
                        raise ExecutorError(f"job {future.key} failed on the cluster: {type(err).__name__}: "
                                            f"{err}") from err
                    on_result and on_result(rows[-1])
                    bar.update()
            finally:
                if own:
                    cluster = getattr(client, "cluster", None)
                    client.close()
                    if cluster is not None:
                        cluster.close()
    finally:
        bar.close()
    order = {job_key(job): i for i, job in enumerate(jobs)}
    report = pd.DataFrame(rows).sort_values("job", key=lambda s: s.map(order)).reset_index(drop=True)
    report.attrs["wall_time_s"] = time.perf_counter() - start
    return report

"""Where the grid's jobs run: in this process (the default) or on a Dask cluster.

At the paper's scale (ten models x three structures x three regimes, hundreds of epochs) training and
the attacks on the trained models are almost all of the study's cost, and the jobs are independent:
the runs of `fmlib.grid.training_jobs`, then the evaluations of `fmlib.grid.evaluation_jobs` (clean
scores, corruptions, attacks), each of which needs its model's checkpoint. `run_grid` sends them to
an executor:

- ``"serial"``: one after the other in this process, every training before the evaluations;
- ``"dask"``: to an existing Dask distributed scheduler (``scheduler="tcp://host:8786"``; a
  ``dask-jobqueue`` SLURM/PBS cluster or a Kubernetes Dask cluster plug in through their scheduler
  address), or to a ``distributed.LocalCluster`` started here with one single-threaded worker per
  core. An evaluation is submitted with its training as a dependency, so it starts as soon as its
  model is trained.

Jobs are idempotent and named by their cache keys (`fmlib.checkpoints.training_key`,
`fmlib.grid.evaluation_key`): a finished job is never re-run (its checkpoint or table is in the
cache), a job that a worker loses is re-run (Dask reschedules it; an interrupted training resumes
from its last epoch; a table is written under a temporary name and renamed, so no half table is
ever read). Workers write to one cache, which must be a folder they all see (``$FMROBUST_CACHE`` on
a shared file system for a multi-machine cluster). The notebooks then read every model and every
evaluation from the cache: executing them stays papermill's job, whatever computed the grid.

Results do not depend on the executor, provided each job runs with the same number of torch threads
(`threads_per_job`): float sums are reduced in an order that depends on the thread count, so the
same seeds with 1 and 2 threads give weights that differ in their last bits.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from ._checks import check_choice, check_int
from .checkpoints import training_key
from .grid import (
    EvaluationJob,
    TrainingJob,
    done_file,
    evaluation_jobs,
    evaluation_key,
    run_evaluation,
    train_job,
    training_jobs,
)
from .paths import cache_dir

EXECUTORS = ("serial", "dask")
#: Seconds to wait for a scheduler before reporting that none answers.
CONNECT_TIMEOUT_S = 10


class ExecutorError(RuntimeError):
    """The executor could not run the grid (no scheduler at the address, a job failed, ...)."""


def job_key(job: TrainingJob | EvaluationJob) -> str:
    """The Dask task name of `job`: its cache key, so the same job has the same name everywhere."""
    if isinstance(job, EvaluationJob):
        return f"{job.label}-{evaluation_key(job)}"
    return f"train-{job.model}-{job.structure}-{training_key(job.model, job.width, job.data, job.config)}"


def _row(job: TrainingJob | EvaluationJob, status: str, worker_pid: int | None, best_val_iou: float = float("nan"),
         train_time_s: float = float("nan")) -> dict:
    kind, training = (job.kind, job.training) if isinstance(job, EvaluationJob) else ("train", job)
    return {"job": job_key(job), "kind": kind, "model": training.model, "structure": training.structure,
            "regime": training.regime, "seed": training.seed, "status": status, "best_val_iou": best_val_iou,
            "train_time_s": train_time_s,
            "worker_pid": worker_pid}


def cached_row(job: TrainingJob | EvaluationJob, cache: str) -> dict:
    """The report row of a finished job, read from its ``done.json`` (nothing is loaded)."""
    if isinstance(job, EvaluationJob):
        return _row(job, "cached", None)
    done = json.loads(done_file(job, cache).read_text())
    return _row(job, "cached", None, done["best_val_iou"], done["train_time_s"])


def _with_threads(threads: int, work: Callable):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return work()
    finally:
        torch.set_num_threads(previous)


def training_task(job: TrainingJob, cache: str, threads: int) -> dict:
    """Run one training job with `threads` torch threads (idempotent: a finished job is loaded from
    the cache, an interrupted one resumes). Returns a row of the grid's report."""
    status = "cached" if done_file(job, cache).exists() else "trained"
    result = _with_threads(threads, lambda: train_job(job, cache=cache, progress=False))
    return _row(job, status, os.getpid(), result.best_val_iou, result.train_time_s)


def evaluation_task(job: EvaluationJob, cache: str, threads: int, *after) -> dict:
    """Run one evaluation with `threads` torch threads (idempotent: a cached table is not recomputed).
    `after` are the results of the jobs it waits for (its training), unused."""
    status = "cached" if done_file(job, cache).exists() else "evaluated"
    _with_threads(threads, lambda: run_evaluation(job, cache=cache))
    return _row(job, status, os.getpid())


def connect(scheduler: str | None = None, *, n_workers: int | None = None):
    """A `distributed.Client`: to the scheduler at `scheduler`, or to a new `LocalCluster` with
    `n_workers` single-threaded worker processes (default: one per core). Raises ExecutorError
    within `CONNECT_TIMEOUT_S` seconds when no scheduler answers at `scheduler`."""
    # distributed is heavy and only the dask executor needs it: imported here, not with the module.
    from distributed import Client, LocalCluster  # noqa: PLC0415

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
             evaluations: bool = True, on_result: Callable[[dict], None] | None = None,
             progress: bool = True) -> pd.DataFrame:
    """Train every model of the study configuration `cfg`, then run every evaluation, skipping what
    is cached; one report row per job (``kind`` is ``"train"`` or the evaluation's kind).

    Parameters
    ----------
    cfg : fmlib.profiles.Config
    executor : {"serial", "dask"}
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); without it, ``"dask"`` starts a
        `LocalCluster` of `n_workers` (default: one per core).
    threads_per_job : int, optional
        Torch threads of each job: default all of this process's for ``"serial"``, one for
        ``"dask"`` (one job per core). Identical results need the same value (module docstring).
    cache : path, optional
        The checkpoint and evaluation cache (default `fmlib.paths.cache_dir`); every worker must see it.
    client : distributed.Client, optional
        Use this client instead of connecting (then `scheduler` and `n_workers` are ignored).
    evaluations : bool
        Also run the evaluations of `fmlib.grid.evaluation_jobs` (default); else train only.
    on_result : callable, optional
        Called with each report row as its job finishes.
    """
    check_choice("executor", executor, EXECUTORS)
    cache = str(Path(cache if cache is not None else cache_dir()).resolve())
    threads = check_int("threads_per_job", threads_per_job if threads_per_job is not None else (
        torch.get_num_threads() if executor == "serial" else 1), low=1)
    jobs = [*training_jobs(cfg), *(evaluation_jobs(cfg) if evaluations else [])]
    finished = [done_file(job, cache).exists() for job in jobs]
    rows = [cached_row(job, cache) for job, done in zip(jobs, finished) if done]  # never sent anywhere
    todo = [job for job, done in zip(jobs, finished) if not done]
    keys = {job: job_key(job) for job in jobs}  # each key hashes the code: computed once per job
    bar = tqdm(total=len(todo), desc=f"grid ({executor})", unit="job", disable=not progress)
    start = time.perf_counter()
    try:
        if executor == "serial":
            for job in todo:  # trainings come first in `jobs`, so every evaluation finds its model
                run = evaluation_task if isinstance(job, EvaluationJob) else training_task
                rows.append(run(job, cache, threads))
                on_result and on_result(rows[-1])
                bar.update()
        elif todo:
            own = client is None
            client = client if client is not None else connect(scheduler, n_workers=n_workers)
            try:
                # the dask executor's own dependency, imported where it is used (see connect)
                from distributed import as_completed  # noqa: PLC0415

                # retries: a job that raises (an out-of-memory worker, say) is tried again; a job on a
                # worker that dies is rescheduled by the scheduler itself. An evaluation takes its
                # training's future as an argument, so Dask starts it once that model is trained.
                futures, trainings = [], {}
                for job in todo:
                    if isinstance(job, EvaluationJob):
                        after = [trainings[t] for t in (job.training, job.surrogate) if t in trainings]
                        future = client.submit(evaluation_task, job, cache, threads, *after, key=keys[job], pure=False,
                                               retries=2)
                    else:
                        future = trainings[job] = client.submit(training_task, job, cache, threads, key=keys[job],
                                                                pure=False, retries=2)
                    futures.append(future)
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
    order = {keys[job]: i for i, job in enumerate(jobs)}
    report = pd.DataFrame(rows).sort_values("job", key=lambda s: s.map(order)).reset_index(drop=True)
    report.attrs["wall_time_s"] = time.perf_counter() - start
    return report

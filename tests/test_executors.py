import os
import signal
import time

import pytest
import torch

from fmlib import executors, grid, paths, profiles, runner
from fmlib.checkpoints import load_trained

# A subset of the smoke grid on nuclei, one seed: two models x three regimes (standard; randomized,
# whose acquisitions are drawn per image; adversarial, whose training attacks from random starts; the
# noise regime left out), each evaluated four ways (clean, two corruptions, the attacks and the noise
# baseline, the ensemble at one budget), and attacked with examples transferred from unet3's standard
# model (a job that waits for two trainings): every model but that one itself, which has no second
# seed here. 6 trainings and 29 evaluations.
CFG = profiles.resolve("smoke", structures=["nuclei"], regimes=["standard", "randomized", "adversarial"],
                       corruptions=["defocus", "photon_noise"], attacks=["fgsm", "pgd"], n_seeds=1,
                       ensemble_eps_255=[8])
N_EVALUATIONS = 29
N_TRAININGS = 6
N_JOBS = N_TRAININGS + N_EVALUATIONS


def _tables(cfg, cache) -> dict[str, bytes]:
    """Per evaluation job: the bytes of the CSV table it left in the cache."""
    tables = {executors.job_key(job): grid.evaluation_path(job, cache).read_bytes()
              for job in grid.evaluation_jobs(cfg)}
    assert len(tables) == N_EVALUATIONS
    return tables


def _weights(cfg, cache) -> dict[str, torch.Tensor]:
    return {executors.job_key(job): torch.cat([p.flatten() for p in load_trained(
        job.model, job.data, job.config, width=job.width, cache=cache).model.state_dict().values()])
        for job in grid.training_jobs(cfg)}


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    cache = tmp_path_factory.mktemp("serial")
    report = executors.run_grid(CFG, executor="serial", threads_per_job=1, cache=cache, progress=False)
    assert len(report) == N_JOBS and list(report.kind[:N_TRAININGS]) == ["train"] * N_TRAININGS  # trainings first
    assert set(report.status[:N_TRAININGS]) == {"trained"} and set(report.status[N_TRAININGS:]) == {"evaluated"}
    return cache


def test_a_local_dask_cluster_gives_the_serial_results_byte_for_byte_even_when_a_worker_is_killed(serial, tmp_path):
    """One grid on two workers, one of them killed outright once both have finished a job (its jobs
    are rescheduled): the tables and weights are the serial ones, and a second run re-runs nothing."""
    client = executors.connect(n_workers=2)
    killed, worked = [], set()

    def kill_one_worker(row):
        worked.add(row["worker_pid"])
        if len(worked) == 2 and not killed:
            pid = next(p for p in client.run(os.getpid).values() if p != row["worker_pid"])
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    try:
        report = executors.run_grid(CFG, executor="dask", cache=tmp_path, client=client, on_result=kill_one_worker,
                                    progress=False)
    finally:
        client.cluster.close() if client.cluster else None
        client.close()
    assert killed and len(report) == N_JOBS and set(report.status) == {"trained", "evaluated"}
    assert report.worker_pid.nunique() >= 2  # both workers worked before one was killed
    assert _tables(CFG, tmp_path) == _tables(CFG, serial)
    for key, weights in _weights(CFG, tmp_path).items():
        assert torch.equal(weights, _weights(CFG, serial)[key])
    again = executors.run_grid(CFG, executor="dask", n_workers=2, cache=tmp_path, progress=False)
    assert set(again.status) == {"cached"}  # a finished job is never re-run


def test_a_wrong_scheduler_address_fails_fast_and_clearly(monkeypatch):
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT_S", 2)  # the wait is the same at any timeout
    start = time.perf_counter()
    with pytest.raises(executors.ExecutorError, match="no Dask scheduler answered at 'tcp://127.0.0.1:9'"):
        executors.run_grid(CFG, executor="dask", scheduler="tcp://127.0.0.1:9", cache="/tmp/unused", progress=False)
    assert time.perf_counter() - start < executors.CONNECT_TIMEOUT_S + 5
    with pytest.raises(ValueError, match="executor"):
        executors.run_grid(CFG, executor="ray")


def test_the_runner_fails_clearly_on_a_wrong_scheduler(tmp_path, capsys, monkeypatch):
    from fmlib import cli

    monkeypatch.setattr(executors, "CONNECT_TIMEOUT_S", 2)

    source = paths.find_root() / "notebooks" / "03_training.ipynb"
    step = {"name": "03_training", "source": source, "up_to_date": False}
    monkeypatch.setattr(runner, "plan", lambda *a, **k: [step])
    assert cli.main(["run", "--profile", "smoke", "--root", str(tmp_path), "--executor", "dask", "--scheduler",
                     "tcp://127.0.0.1:9"]) == 1
    assert "no Dask scheduler answered" in capsys.readouterr().err
    assert cli.main(["run", "--profile", "smoke", "--scheduler", "tcp://127.0.0.1:9"]) == 1
    assert "--scheduler: needs --executor dask" in capsys.readouterr().err


@pytest.mark.parametrize("notebook, sends_grid", [("01_synthesis", False), ("03_training", True)])
def test_the_runner_sends_the_grid_only_for_notebooks_that_run_it(tmp_path, monkeypatch, notebook, sends_grid):
    """01 does not import fmlib.grid: a run of it alone must not start (or wait for) a cluster."""
    import papermill

    class Stop(Exception):
        pass

    sent = []
    source = paths.find_root() / "notebooks" / f"{notebook}.ipynb"
    monkeypatch.setattr(runner, "plan", lambda *a, **k: [{"name": notebook, "source": source, "up_to_date": False,
                                                         "parameters": {}, "key": "k", "threads": 1}])

    def send(*args, **kwargs):
        sent.append(args)
        raise Stop()

    def execute(*args, **kwargs):  # the notebook itself is not executed: the decision came before it
        raise Stop()

    monkeypatch.setattr(runner, "run_grid", send)
    monkeypatch.setattr(papermill, "execute_notebook", execute)
    with pytest.raises((Stop, runner.StudyError)):
        runner.run("smoke", root=tmp_path, executor="dask", progress=False)
    assert bool(sent) == sends_grid

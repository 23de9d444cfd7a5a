"""The study runner: papermill execution of the notebooks, each re-executed only when out of date.

``fmrobust run --profile P`` executes each notebook of ``NOTEBOOKS`` with papermill into
``book/notebooks/``, injecting the profile's values (`fmlib.profiles`) of the parameters the
notebook declares. An executed notebook records its key (`notebook_key`) in its metadata; a
notebook whose key is unchanged is not executed again. ``results/<profile>/manifest.json``
records the run (`fmlib.provenance`).
"""

from __future__ import annotations

import ast
import datetime as _dt
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import nbformat
import papermill
from tqdm.auto import tqdm

from ._checks import check_choice
from .cache import PACKAGE, content_key, imported_modules, module_closure
from .executors import EXECUTORS, ExecutorError, run_grid
from .paths import cache_dir, find_root
from .profiles import PROFILE_NAMES, Config, resolve, results_dir
from .provenance import (
    environment,
    git_commit,
    load_manifest,
    source_hash,
    write_manifest,
)

#: The notebooks, in execution order (later notebooks read the tables earlier ones write).
NOTEBOOKS: list[str] = ["01_synthesis", "02_corruptions", "03_training", "04_corruption_robustness",
                        "05_adversarial_robustness", "06_defenses", "07_real_images",
                        "07b_real_objects", "07c_real_robustness", "08_summary_recommendations",
                        "10_which_model"]


class StudyError(RuntimeError):
    """A study step failed; the message names the notebook, the cell and the error."""


def _code(notebook_path: Path) -> str:
    """The source of a notebook's code cells, one after the other."""
    nb = json.loads(Path(notebook_path).read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")


def notebook_modules(notebook_path: Path, package: Path | None = None) -> list[str]:
    """The ``fmlib`` modules a notebook's code runs: those its code cells import, and everything they
    import in turn (`fmlib.cache.module_closure`)."""
    package = Path(package) if package is not None else PACKAGE
    # IPython magics and shell escapes are not Python.
    code = "\n".join(line for line in _code(notebook_path).splitlines() if not line.lstrip().startswith(("%", "!")))
    return module_closure(imported_modules(ast.parse(code), package), package)


_READ_TABLE = re.compile(r"""read_(?:csv|parquet|json|table)\([^)]*?["'](\d\d[a-z]?_\w+)\.""")


def notebook_inputs(notebook_path: Path, notebooks: Sequence[str] | None = None) -> list[str]:
    """The notebooks of the study whose results tables this notebook reads, in study order. Tables are
    named by the number of the notebook that writes them: ``pd.read_csv(out / "04_corruption.csv")``
    reads from ``04_corruption_robustness``."""
    notebooks = NOTEBOOKS if notebooks is None else notebooks
    tables = set(_READ_TABLE.findall(_code(notebook_path)))
    own = Path(notebook_path).stem
    numbers = {t.split("_")[0] for t in tables}
    return [name for name in notebooks if name != own and name.split("_")[0] in numbers]


def _notebook_source(path: Path) -> str:
    nb = json.loads(Path(path).read_text())
    return json.dumps([[c["cell_type"], "".join(c["source"])] for c in nb["cells"]
                       if "parameters" not in c.get("metadata", {}).get("tags", [])])


def notebook_key(notebook_path: Path, parameters: dict, upstream: str = "", package: Path | None = None, *,
                 threads: int) -> str:
    """Cache key of one execution (`fmlib.cache.content_key`): the parameter values, the notebook's
    source but its parameters cell (papermill overrides every declared parameter), `upstream` (the
    keys of the notebooks whose tables it reads, `notebook_inputs`), the kernel's torch `threads`
    (the profile's ``kernel_threads``: the last bits of a notebook that trains or attacks depend on
    it), and the code of the ``fmlib`` modules it runs (`notebook_modules`). A change upstream
    re-executes what depends on it; changing a module that a notebook does not run, or a notebook
    whose tables it does not read, leaves it up to date."""
    package = Path(package) if package is not None else PACKAGE
    payload = {"parameters": parameters, "source": _notebook_source(notebook_path), "upstream": upstream,
               "threads": threads}
    return content_key(payload, notebook_modules(notebook_path, package), length=32, package=package)


def declared_parameters(notebook_path: Path) -> list[str]:
    """Names assigned in the notebook's cell tagged ``parameters``."""
    return list(papermill.inspect_notebook(str(notebook_path)))


def _executed_path(root: Path, name: str) -> Path:
    return root / "book" / "notebooks" / f"{name}.ipynb"


def executed_key(path: Path) -> str | None:
    """The key recorded in an executed notebook, or None."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())["metadata"].get("fmrobust", {}).get("key")
    except (ValueError, KeyError):
        return None


def plan(profile: str, root: Path, overrides: dict | None = None, only: Sequence[str] | None = None) -> list[dict]:
    """What `run` would do: per notebook, its parameters, key and whether it is up to date."""
    cfg = resolve(profile, **(overrides or {}))
    names = NOTEBOOKS if not only else [check_choice("only", n, NOTEBOOKS) for n in only]
    steps, keys = [], {}
    for name in NOTEBOOKS:  # keys chain through the notebooks each one reads, run or not
        source = root / "notebooks" / f"{name}.ipynb"
        params = _declared_values(root, name, cfg)
        upstream = "".join(keys[n] for n in notebook_inputs(source) if n in keys)
        key = keys[name] = notebook_key(source, params, upstream, threads=cfg.kernel_threads)
        if name not in names:
            continue
        target = _executed_path(root, name)
        steps.append({"name": name, "source": source, "target": target, "parameters": params, "key": key,
                      "threads": cfg.kernel_threads, "up_to_date": executed_key(target) == key})
    return steps


def _declared_values(root: Path, name: str, cfg: Config) -> dict:
    """The values of the parameters that notebook `name` declares."""
    source = root / "notebooks" / f"{name}.ipynb"
    if not source.exists():
        raise StudyError(f"notebook {name}: {source} is missing")
    declared = declared_parameters(source)
    missing = [k for k in declared if k not in cfg]
    if missing:
        raise StudyError(f"notebook {name}: parameter {missing[0]!r} has no value in fmlib.profiles.PROFILES")
    return {k: cfg[k] for k in declared}


# A kernel's torch (OpenMP) threads are the profile's ``kernel_threads``. Float sums are reduced in an
# order that depends on the thread count, and a notebook that trains (the real-data reference, the
# continuations) or attacks (the L2 ensemble) amplifies the last bits: with the count fixed, and in the
# key, the same parameters give the same bytes on every machine, as the grid's jobs do with
# ``threads_per_job``. The standard book runs on 1 thread; the smoke profile on 2, CI's cores.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def _kernel_threads(threads: int):
    """Environment of the kernels started inside: `threads` torch threads (restored on exit)."""
    before = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update({name: str(threads) for name in _THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _execute(step: dict, profile: str, root: Path, out_dir: Path) -> float:
    """Execute one notebook into a temporary file that replaces the executed notebook only on success;
    returns its wall time. A failure keeps the failed copy in ``results/<profile>/failed/``."""
    name = step["name"]
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / f"{name}.ipynb"
        start = time.perf_counter()
        try:
            with _kernel_threads(step["threads"]):
                papermill.execute_notebook(str(step["source"]), str(scratch), parameters=step["parameters"],
                                           kernel_name="python3", progress_bar=False, cwd=str(root))
        except papermill.PapermillExecutionError as err:
            failed = out_dir / "failed"
            failed.mkdir(exist_ok=True)
            shutil.copy(scratch, failed / f"{name}.ipynb")
            raise StudyError(
                f"notebook {name} failed in cell {err.cell_index} (execution count {err.exec_count}): "
                f"{err.ename}: {err.evalue}\nfailed copy: {failed / f'{name}.ipynb'}") from None
        wall = time.perf_counter() - start
        nb = nbformat.read(scratch, as_version=4)
        nb.metadata["fmrobust"] = {"key": step["key"], "profile": profile, "parameters": step["parameters"],
                                   "kernel_threads": step["threads"], "wall_time_s": round(wall, 2)}
        nbformat.write(nb, scratch)
        shutil.move(str(scratch), step["target"])
    return wall


def run(profile: str, *, root: str | Path | None = None, only: Sequence[str] | None = None, force: bool = False,
        overrides: dict | None = None, progress: bool = True, executor: str = "serial",
        scheduler: str | None = None, n_workers: int | None = None, threads_per_job: int | None = None) -> dict:
    """Execute the study's notebooks at `profile`; returns the manifest.

    Parameters are validated before anything runs. A notebook that is up to date (same key) is
    skipped unless `force`. Each notebook executes into a temporary file that replaces the executed
    notebook only on success, so a failure leaves every executed notebook intact; the failed copy
    is kept in ``results/<profile>/failed/`` for inspection.

    With ``executor="dask"`` the grid (every training, then every evaluation of the trained models)
    runs first on a Dask cluster (`fmlib.executors`: `scheduler` address, or a local cluster of
    `n_workers`); the notebooks then read every model and evaluation from the cache. The default
    ``"serial"`` trains and evaluates inside the notebooks, which cache what they compute the same way.
    """
    check_choice("executor", executor, EXECUTORS)
    root = Path(root).resolve() if root is not None else find_root()
    cfg = resolve(profile, **(overrides or {}))
    steps = plan(profile, root, overrides, only)
    out_dir = results_dir(profile, root)
    manifest_path = out_dir / "manifest.json"
    manifest = load_manifest(manifest_path)
    manifest.update({"profile": profile, "parameters": dict(cfg), "git": git_commit(root),
                     "environment": environment(), "fmlib_source_hash": source_hash(),
                     "executor": {"name": executor}})
    manifest.setdefault("notebooks", {})
    (root / "book" / "notebooks").mkdir(parents=True, exist_ok=True)
    env_root = os.environ.get("FMROBUST_ROOT")
    os.environ["FMROBUST_ROOT"] = str(root)  # the kernel inherits it: notebooks find results/ and data/
    bar = tqdm(steps, desc=f"study ({profile})", unit="notebook", disable=not progress)
    try:
        # The grid goes to the cluster first when a notebook to be executed runs it (imports fmlib.grid).
        if executor != "serial" and any((force or not s["up_to_date"])
                                        and any(m.startswith("grid/") for m in notebook_modules(s["source"]))
                                        for s in steps):
            start = time.perf_counter()
            try:
                report = run_grid(cfg, executor=executor, scheduler=scheduler, n_workers=n_workers,
                                  threads_per_job=threads_per_job, progress=progress)
            except ExecutorError as err:
                raise StudyError(str(err)) from None
            manifest["executor"].update(scheduler=scheduler, n_workers=n_workers, threads_per_job=threads_per_job,
                                        jobs=len(report), trained=int((report.status == "trained").sum()),
                                        evaluated=int((report.status == "evaluated").sum()),
                                        grid_wall_time_s=round(time.perf_counter() - start, 2))
        for step in bar:
            name = step["name"]
            bar.set_postfix_str(name)
            # Keyed again now, not when the run began: a notebook or module edited while earlier
            # notebooks ran is recorded with the key of the source that actually executes.
            step = plan(profile, root, overrides, [name])[0]
            if step["up_to_date"] and not force:
                entry = manifest["notebooks"].get(name, {})
                entry.update({"status": "cached", "key": step["key"], "parameters": step["parameters"]})
                manifest["notebooks"][name] = entry
                continue
            wall = _execute(step, profile, root, out_dir)
            manifest["notebooks"][name] = {
                "status": "executed", "key": step["key"], "parameters": step["parameters"],
                "wall_time_s": round(wall, 2), "executed_at": _dt.datetime.now(_dt.timezone.utc).isoformat(
                    timespec="seconds")}
            write_manifest(manifest_path, manifest)
    finally:
        if env_root is None:
            os.environ.pop("FMROBUST_ROOT", None)
        else:
            os.environ["FMROBUST_ROOT"] = env_root
    manifest["seeds"] = {"seed": manifest["parameters"].get("seed")}
    write_manifest(manifest_path, manifest)
    return manifest


def clean(profile: str | None = None, *, root: str | Path | None = None, results: bool = False) -> list[Path]:
    """Remove the book build, the cache and failed notebooks; with `results`, also the executed
    notebooks and ``results/<profile>/``. Returns what was removed."""
    root = Path(root).resolve() if root is not None else find_root()
    targets = [root / "_build", cache_dir(root)]
    profiles = [check_choice("profile", profile, PROFILE_NAMES)] if profile else list(PROFILE_NAMES)
    targets += [root / "results" / p / "failed" for p in profiles]
    if results:
        targets += [root / "results" / p for p in profiles] + [_executed_path(root, n) for n in NOTEBOOKS]
    removed = []
    for target in targets:
        if target.is_dir():
            shutil.rmtree(target)
            removed.append(target)
        elif target.exists():
            target.unlink()
            removed.append(target)
    return removed

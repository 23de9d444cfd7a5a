"""The study runner: profiles, parameters, and papermill execution of the notebooks.

Everything the study is made of is declared here, in one place:

- ``NOTEBOOKS``: the notebooks of ``notebooks/``, in the order they run;
- ``PARAMETERS``: every notebook parameter, its check and its meaning;
- ``PROFILES``: the value of each parameter at ``smoke`` (tests, CI), ``standard`` (the committed book,
  a 2-core CPU) and ``paper`` (the paper's scale, a GPU).

``fmrobust run --profile P`` executes each notebook with papermill into ``book/notebooks/``, injecting
the profile's values of the parameters that the notebook declares. An executed notebook records a key
(hash of its parameters, its source and the ``fmlib`` modules it runs) in its metadata; a notebook whose key is
unchanged is not executed again. ``results/<profile>/manifest.json`` records parameters, seeds,
package versions, the git commit and the wall time of each notebook.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._checks import check_choice, check_int, check_real
from .corruptions import list_corruptions
from .models import list_models

#: The notebooks, in execution order (later notebooks read the tables earlier ones write).
NOTEBOOKS: list[str] = ["01_synthesis", "02_corruptions", "03_training", "04_corruption_robustness",
                        "05_adversarial_robustness", "06_defenses", "07_real_images", "08_summary_recommendations"]

PROFILE_NAMES = ("smoke", "standard", "paper")
STRUCTURE_NAMES = ("nuclei", "mitochondria", "er")


@dataclass(frozen=True)
class Parameter:
    """A notebook parameter: how to check a value, and what it means."""

    check: Callable[[str, object], object]
    doc: str


def _positive_int(name, value):
    return check_int(name, value, low=1)


def _non_negative_int(name, value):
    return check_int(name, value, low=0)


def _image_size(name, value):
    value = check_int(name, value, low=32, high=4096)
    if value % 32:
        raise ValueError(f"{name}: expected a multiple of 32 (models downsample by 32), got {value}")
    return value


def _list_of(what: str, check_item):
    """A checker of a non-empty list whose items pass ``check_item(item_name, value)``."""

    def check(name, value):
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"{name}: expected a non-empty list of {what}, got {value!r}")
        return [check_item(f"{name}[{i}]", v) for i, v in enumerate(value)]

    return check


def _one_of(choices):
    return lambda name, value: check_choice(name, value, choices() if callable(choices) else choices)


def _registered_attacks():
    from .attacks import ATTACKS

    return list(ATTACKS)


def _registered_regimes():
    from .grid import REGIMES

    return list(REGIMES)


_snr_levels = _list_of("SNR values", lambda n, v: check_real(n, v, low=0.0, low_inclusive=False))
_eps_levels = _list_of("budgets in grey levels", lambda n, v: check_real(n, v, low=0.0, high=255.0))
_structures = _list_of("structures", _one_of(STRUCTURE_NAMES))
_corruptions = _list_of("corruption names", _one_of(lambda: ALL_CORRUPTIONS))
_models = _list_of("model names", _one_of(lambda: ALL_MODELS))
_regimes = _list_of("training regimes", _one_of(_registered_regimes))
_attacks = _list_of("attack names", _one_of(_registered_attacks))


def _widths(name, value):
    if not isinstance(value, dict):
        raise ValueError(f"{name}: expected a dict of model name -> width, got {value!r}")
    return {check_choice(f"{name} key", k, ALL_MODELS): check_real(f"{name}[{k!r}]", v, low=0.05, high=4.0)
            for k, v in value.items()}


def _boolean(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    return value


def _positive_real(name, value):
    return check_real(name, value, low=0.0, low_inclusive=False)


PARAMETERS: dict[str, Parameter] = {
    "profile": Parameter(lambda n, v: check_choice(n, v, PROFILE_NAMES), "Profile name."),
    "seed": Parameter(_non_negative_int, "Master seed of every random draw."),
    "image_size": Parameter(_image_size, "Image side in pixels (a multiple of 32)."),
    "structures": Parameter(_structures, "Structures to simulate."),
    "snr_levels": Parameter(_snr_levels, "SNR levels of the noise ladder (clean = 8)."),
    "n_images_snr": Parameter(_positive_int, "Images per structure and SNR for the measured-SNR check."),
    "ptc_levels": Parameter(_positive_int, "Flat-field levels of the photon-transfer curve."),
    "ptc_frame_size": Parameter(_image_size, "Side of each photon-transfer flat field, in pixels."),
    "n_images_compare": Parameter(_positive_int, "Synthetic nuclei images compared with the real image."),
    "corruptions": Parameter(_corruptions, "Corruptions to apply (names from fmlib.corruptions)."),
    "n_images_quality": Parameter(_positive_int, "Images per structure for the image-quality table."),
    "models": Parameter(_models, "Architectures to train (names from fmlib.models)."),
    "widths": Parameter(_widths,
                        "Channel width multiplier per model (1.0 = the paper's size; others default to 1.0)."),
    "regimes": Parameter(_regimes, "Training regimes: standard, noise (augmentation), adversarial."),
    "n_train": Parameter(_positive_int, "Training images per structure."),
    "n_val": Parameter(_positive_int, "Validation images per structure (checkpoint selection)."),
    "n_test": Parameter(_positive_int, "Test images per structure."),
    "epochs": Parameter(_positive_int, "Training epochs."),
    "batch_size": Parameter(_positive_int, "Training batch size."),
    "optimizer": Parameter(lambda n, v: check_choice(n, v, ("adamw", "sgd")),
                           "adamw (cosine schedule) or sgd (the paper's: momentum 0.9, lr halved every 100 "
                           "epochs)."),
    "lr": Parameter(_positive_real, "Learning rate."),
    "loss": Parameter(lambda n, v: check_choice(n, v, ("bce", "bce+dice")),
                      "Training loss: bce (the paper's) or bce+dice (robust to thin, sparse foreground)."),
    "mixed_precision": Parameter(_boolean, "bfloat16 autocast for training and evaluation on CUDA (attacks keep "
                                           "float32 gradients); no effect on a CPU."),
    "defense_structures": Parameter(_structures, "Structures on which the defended regimes (noise, adversarial) "
                                    "are trained; the standard regime is trained on every structure."),
    "adv_method": Parameter(lambda n, v: check_choice(n, v, ("pgd", "fgsm_rs")),
                            "Adversarial training attack: pgd (the paper's) or fgsm_rs (fast, FGSM from a random "
                            "start)."),
    "adv_steps": Parameter(_positive_int, "PGD iterations of adversarial training."),
    "n_examples": Parameter(_positive_int, "Example predictions shown per structure."),
    "attacks": Parameter(_attacks, "Attacks to run (names from fmlib.attacks.ATTACKS)."),
    "eps_255": Parameter(_eps_levels, "Attack budgets in grey levels of an 8-bit image (eps * 255)."),
    "n_attack_images": Parameter(_positive_int, "Test images per structure that are attacked."),
    "attack_steps": Parameter(_positive_int, "Iterations of PGD, SegPGD and CosPGD."),
    "reference_model": Parameter(lambda n, v: check_choice(n, v, ALL_MODELS),
                                 "Reference model of the corruption errors (CE, rCE)."),
    "n_boot": Parameter(_positive_int, "Bootstrap resamples of every confidence interval."),
    "real_epochs": Parameter(_positive_int,
                             "Epochs of the model trained on real images (the sim-to-real reference)."),
    "randomization_strengths": Parameter(
        _list_of("numbers in [0, 1]", lambda n, v: check_real(n, v, low=0.0, high=1.0)),
        "Strengths of the domain randomization tried for sim-to-real transfer (`fmlib.domain.PhysicsRanges.scaled`); "
        "the one with the best IoU on the real training images is kept."),
    "defense_attack": Parameter(lambda n, v: check_choice(n, v, ("fgsm", "ifgsm", "pgd", "segpgd", "cospgd")),
                                "The attack that measures the adversarial robustness of defended models."),
}

ALL_CORRUPTIONS = list_corruptions()
ALL_MODELS = list_models()
# CPU widths for the standard profile: the small U-Nets at (near) full size, the large CNNs at a
# quarter of their channels, the transformers at half.
STANDARD_WIDTHS = {"unet": 0.25, "unet3": 0.5, "sim_unet": 1.0, "fcn": 0.25, "segnet": 0.25, "deeplabv3plus": 0.25,
                   "pspnet": 0.25, "icnet": 0.5, "segformer": 0.5, "vit_dpt": 0.5}

_ALL_STRUCTURES = ["nuclei", "mitochondria", "er"]
_ALL_REGIMES = ["standard", "noise", "adversarial"]
_ALL_ATTACKS = ["fgsm", "ifgsm", "pgd", "segpgd", "cospgd"]
_PAPER_EPS_255 = [1, 2, 4, 8, 16, 32]

PROFILES: dict[str, dict[str, object]] = {
    "smoke": dict(
        seed=0, image_size=64, structures=list(_ALL_STRUCTURES), snr_levels=[8, 4, 2, 1],
        n_images_snr=2, ptc_levels=6, ptc_frame_size=64, n_images_compare=4,
        corruptions=ALL_CORRUPTIONS, n_images_quality=2,
        models=["sim_unet", "unet3"], widths={"sim_unet": 1.0, "unet3": 0.5}, regimes=list(_ALL_REGIMES),
        n_train=8, n_val=4, n_test=4, epochs=3, batch_size=4, optimizer="adamw", lr=3e-3, loss="bce+dice",
        mixed_precision=False, defense_structures=list(_ALL_STRUCTURES), adv_method="fgsm_rs", adv_steps=1,
        n_examples=2, attacks=list(_ALL_ATTACKS), eps_255=list(_PAPER_EPS_255), n_attack_images=2, attack_steps=3,
        reference_model="unet3", n_boot=200, defense_attack="pgd", real_epochs=3,
        randomization_strengths=[0.5, 1.0]),
    "standard": dict(
        seed=0, image_size=128, structures=list(_ALL_STRUCTURES), snr_levels=[8, 4, 2, 1],
        n_images_snr=8, ptc_levels=12, ptc_frame_size=256, n_images_compare=16,
        corruptions=ALL_CORRUPTIONS, n_images_quality=8,
        models=list(ALL_MODELS), widths=dict(STANDARD_WIDTHS), regimes=list(_ALL_REGIMES),
        n_train=128, n_val=32, n_test=32, epochs=10, batch_size=8, optimizer="adamw", lr=2e-3, loss="bce+dice",
        mixed_precision=False, defense_structures=["nuclei"], adv_method="fgsm_rs", adv_steps=1,
        n_examples=3, attacks=list(_ALL_ATTACKS), eps_255=list(_PAPER_EPS_255), n_attack_images=8, attack_steps=10,
        reference_model="unet", n_boot=2000, defense_attack="pgd", real_epochs=30,
        randomization_strengths=[0.25, 0.5, 1.0]),
    "paper": dict(
        seed=0, image_size=256, structures=list(_ALL_STRUCTURES), snr_levels=[8, 4, 2, 1],
        n_images_snr=32, ptc_levels=16, ptc_frame_size=512, n_images_compare=64,
        corruptions=ALL_CORRUPTIONS, n_images_quality=32,
        models=list(ALL_MODELS), widths={}, regimes=list(_ALL_REGIMES),
        n_train=800, n_val=100, n_test=200, epochs=500, batch_size=4, optimizer="sgd", lr=0.01, loss="bce",
        mixed_precision=True, defense_structures=list(_ALL_STRUCTURES), adv_method="pgd", adv_steps=10,
        n_examples=4, attacks=list(_ALL_ATTACKS), eps_255=list(_PAPER_EPS_255), n_attack_images=100, attack_steps=10,
        reference_model="unet", n_boot=2000, defense_attack="pgd", real_epochs=30,
        randomization_strengths=[0.25, 0.5, 1.0]),
}


class StudyError(RuntimeError):
    """A study step failed; the message names the notebook, the cell and the error."""


class Config(dict):
    """Validated parameters of one profile; read them as keys or attributes (``cfg.seed``)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def resolve(profile: str, **overrides) -> Config:
    """Parameters of `profile` with `overrides` applied, all validated.

    Raises ValueError naming the parameter for an unknown profile or parameter, or a bad value
    (a negative count, an unknown structure, ...).

    Examples
    --------
    >>> resolve("smoke", seed=3).seed
    3
    """
    check_choice("profile", profile, PROFILE_NAMES)
    unknown = sorted(set(overrides) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown parameter; expected one of {', '.join(sorted(PARAMETERS))}")
    values = {"profile": profile, **PROFILES[profile], **overrides}
    cfg = Config({name: PARAMETERS[name].check(name, value) for name, value in values.items()})
    if cfg.get("reference_model") not in cfg.get("models", [cfg.get("reference_model")]):
        raise ValueError(f"reference_model: {cfg.reference_model!r} is not one of the trained models {cfg.models}")
    return cfg


# ----------------------------------------------------------------------------------------------
# Paths and hashes
# ----------------------------------------------------------------------------------------------

def find_root(start: str | Path | None = None) -> Path:
    """The study's root folder: ``$FMROBUST_ROOT``, or the first folder at or above `start` (default:
    the current directory) holding ``_toc.yml`` and ``notebooks/``."""
    env = os.environ.get("FMROBUST_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").exists() and (folder / "notebooks").is_dir():
            return folder
    raise StudyError(f"no fmrobust study (a folder with _toc.yml and notebooks/) at or above {here}; "
                     "run from the repository or set FMROBUST_ROOT")


def results_dir(profile: str, root: str | Path | None = None) -> Path:
    """``results/<profile>/`` of the study, created if missing."""
    check_choice("profile", profile, PROFILE_NAMES)
    folder = Path(root) if root is not None else find_root()
    out = folder / "results" / profile
    out.mkdir(parents=True, exist_ok=True)
    return out


#: Modules that compute nothing the notebooks read: this runner and its command line (the parameter
#: values it hands a notebook are hashed instead), the assay of a user's own model, and the executors
#: that only decide where grid jobs run (a job's result does not depend on its executor). Changing
#: them must not re-execute the study.
UNHASHED_MODULES = ("assay.py", "cli.py", "executors.py", "study.py")


def source_hash() -> str:
    """Hash of the ``fmlib`` source (every .py file but `UNHASHED_MODULES`), recorded in the manifest."""
    package = Path(__file__).resolve().parent
    return module_hash([str(p.relative_to(package)) for p in package.rglob("*.py")], package)


def module_hash(modules: Sequence[str], package: Path | None = None) -> str:
    """Hash of the ``fmlib`` modules `modules` (paths relative to the package, such as
    ``"synthesis/optics.py"``), by path and content; `UNHASHED_MODULES` are left out."""
    package = Path(package) if package is not None else Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in sorted(set(modules) - set(UNHASHED_MODULES)):
        digest.update(name.encode())
        digest.update((package / name).read_bytes())
    return digest.hexdigest()


def _module_file(package: Path, dotted: Sequence[str]) -> str | None:
    """``fmlib.a.b`` (as ``["a", "b"]``) as a path relative to `package`, or None if it is no module."""
    base = package.joinpath(*dotted)
    if base.with_suffix(".py").is_file():
        return str(base.with_suffix(".py").relative_to(package))
    if (base / "__init__.py").is_file():
        return str((base / "__init__.py").relative_to(package))
    return None


def _imported_modules(tree, package: Path, current: Sequence[str] = ()) -> set[str]:
    """The ``fmlib`` modules that the statements of `tree` import, anywhere (function-local imports
    too), with the ``__init__.py`` of every package on the way. `current` is the dotted package of
    the module `tree` comes from, for relative imports."""
    import ast

    targets: list[list[str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets += [alias.name.split(".")[1:] for alias in node.names if alias.name.split(".")[0] == "fmlib"]
        elif isinstance(node, ast.ImportFrom):
            module = (node.module or "").split(".")
            if node.level:  # ``from .x import y`` in package `current`; each further dot goes one up
                base = list(current)[: len(current) - (node.level - 1)] + [m for m in module if m]
            elif module[0] == "fmlib":
                base = module[1:]
            else:
                continue
            targets.append(base)
            # ``from fmlib import realdata`` imports a module; ``from fmlib.x import name`` an attribute.
            targets += [base + [alias.name] for alias in node.names]
    found = set()
    for dotted in targets:
        dotted = [part for part in dotted if part]
        for depth in range(len(dotted) + 1):  # the packages on the way are imported too
            name = _module_file(package, dotted[:depth])
            if name is not None:
                found.add(name)
    return found


def notebook_modules(notebook_path: Path, package: Path | None = None) -> list[str]:
    """The ``fmlib`` modules a notebook's code runs: those its code cells import, and everything they
    import in turn. `UNHASHED_MODULES` are neither listed nor followed."""
    import ast

    package = Path(package) if package is not None else Path(__file__).resolve().parent
    # IPython magics and shell escapes are not Python.
    code = "\n".join(line for line in _code(notebook_path).splitlines() if not line.lstrip().startswith(("%", "!")))
    pending = _imported_modules(ast.parse(code), package) - set(UNHASHED_MODULES)
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        seen.add(name)
        current = name.split("/")[:-1]  # the package the module is in (for __init__.py: the package itself)
        tree = ast.parse((package / name).read_text())
        pending |= _imported_modules(tree, package, current) - seen - set(UNHASHED_MODULES)
    return sorted(seen)


def _code(notebook_path: Path) -> str:
    """The source of a notebook's code cells, one after the other."""
    nb = json.loads(Path(notebook_path).read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")


_READ_TABLE = re.compile(r"""read_(?:csv|parquet|json|table)\([^)]*?["'](\d\d_\w+)\.""")


def notebook_inputs(notebook_path: Path, notebooks: Sequence[str] | None = None) -> list[str]:
    """The notebooks of the study whose results tables this notebook reads, in study order. Tables are
    named by the number of the notebook that writes them: ``pd.read_csv(out / "04_corruption.csv")``
    reads from ``04_corruption_robustness``."""
    notebooks = NOTEBOOKS if notebooks is None else notebooks
    tables = set(_READ_TABLE.findall(_code(notebook_path)))
    own = Path(notebook_path).stem
    numbers = {t.split("_")[0] for t in tables}
    return [name for name in notebooks if name != own and name.split("_")[0] in numbers]


def notebook_key(notebook_path: Path, parameters: dict, upstream: str = "") -> str:
    """Cache key of one execution: the parameter values, the notebook's source but its parameters cell
    (papermill overrides every declared parameter), the ``fmlib`` modules it runs (`notebook_modules`),
    and `upstream`, the keys of the notebooks whose tables it reads (`notebook_inputs`), so that a
    change upstream re-executes what depends on it. Changing a module that a notebook does not run,
    or a notebook whose tables it does not read, leaves it up to date."""
    digest = hashlib.sha256()
    digest.update(json.dumps(parameters, sort_keys=True).encode())
    digest.update(_notebook_source(notebook_path).encode())
    digest.update(module_hash(notebook_modules(notebook_path)).encode())
    digest.update(upstream.encode())
    return digest.hexdigest()[:32]


def _notebook_source(path: Path) -> str:
    nb = json.loads(Path(path).read_text())
    return json.dumps([[c["cell_type"], "".join(c["source"])] for c in nb["cells"]
                       if "parameters" not in c.get("metadata", {}).get("tags", [])])


def declared_parameters(notebook_path: Path) -> list[str]:
    """Names assigned in the notebook's cell tagged ``parameters``."""
    import papermill

    return list(papermill.inspect_notebook(str(notebook_path)))


def git_commit(root: Path) -> dict:
    """The commit of `root` and whether the work tree has uncommitted changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, check=True).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def environment() -> dict:
    """Package versions and hardware, for the manifest."""
    from importlib.metadata import PackageNotFoundError, version

    packages = {}
    for name in ("fmlib", "torch", "torchvision", "timm", "segmentation-models-pytorch", "numpy", "scipy",
                 "scikit-image", "pandas", "seaborn", "tifffile", "papermill", "jupyter-book", "myst-nb"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    return {"python": platform.python_version(), "platform": platform.platform(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "packages": packages}


# ----------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------

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
        key = keys[name] = notebook_key(source, params, upstream)
        if name not in names:
            continue
        target = _executed_path(root, name)
        steps.append({"name": name, "source": source, "target": target, "parameters": params, "key": key,
                      "up_to_date": executed_key(target) == key})
    return steps


def _declared_values(root: Path, name: str, cfg: Config) -> dict:
    """The values of the parameters that notebook `name` declares."""
    source = root / "notebooks" / f"{name}.ipynb"
    if not source.exists():
        raise StudyError(f"notebook {name}: {source} is missing")
    declared = declared_parameters(source)
    missing = [k for k in declared if k not in cfg]
    if missing:
        raise StudyError(f"notebook {name}: parameter {missing[0]!r} has no value in fmlib.study.PROFILES")
    return {k: cfg[k] for k in declared}


def _load_manifest(path: Path) -> dict:
    if path.exists():
        try:
            return json.loads(path.read_text())
        except ValueError:
            pass
    return {}


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
    from .executors import EXECUTORS, ExecutorError, run_grid

    check_choice("executor", executor, EXECUTORS)
    import nbformat
    import papermill
    from tqdm.auto import tqdm

    root = Path(root).resolve() if root is not None else find_root()
    steps = plan(profile, root, overrides, only)
    out_dir = results_dir(profile, root)
    manifest_path = out_dir / "manifest.json"
    manifest = _load_manifest(manifest_path)
    manifest.update({"profile": profile, "parameters": dict(resolve(profile, **(overrides or {}))),
                     "git": git_commit(root), "environment": environment(), "fmlib_source_hash": source_hash()})
    manifest.setdefault("notebooks", {})
    (root / "book" / "notebooks").mkdir(parents=True, exist_ok=True)
    env_root = os.environ.get("FMROBUST_ROOT")
    os.environ["FMROBUST_ROOT"] = str(root)  # the kernel inherits it: notebooks find results/ and data/
    bar = tqdm(steps, desc=f"study ({profile})", unit="notebook", disable=not progress)
    try:
        manifest["executor"] = {"name": executor}
        # The grid goes to the cluster first when a notebook to be executed runs it (imports fmlib.grid).
        if executor != "serial" and any((force or not s["up_to_date"]) and "grid.py" in notebook_modules(s["source"])
                                        for s in steps):
            start = time.perf_counter()
            try:
                report = run_grid(resolve(profile, **(overrides or {})), executor=executor, scheduler=scheduler,
                                  n_workers=n_workers, threads_per_job=threads_per_job, progress=progress)
            except ExecutorError as err:
                raise StudyError(str(err)) from None
            manifest["executor"].update(scheduler=scheduler, n_workers=n_workers, threads_per_job=threads_per_job,
                                        jobs=len(report), trained=int((report.status == "trained").sum()),
                                        evaluated=int((report.status == "evaluated").sum()),
                                        grid_wall_time_s=round(time.perf_counter() - start, 2))
        for step in bar:
            name = step["name"]
            bar.set_postfix_str(name)
            entry = manifest["notebooks"].get(name, {})
            if step["up_to_date"] and not force:
                entry.update({"status": "cached", "key": step["key"], "parameters": step["parameters"]})
                manifest["notebooks"][name] = entry
                continue
            with tempfile.TemporaryDirectory() as tmp:
                scratch = Path(tmp) / f"{name}.ipynb"
                start = time.perf_counter()
                try:
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
                                           "wall_time_s": round(wall, 2)}
                nbformat.write(nb, scratch)
                shutil.move(str(scratch), step["target"])
            manifest["notebooks"][name] = {
                "status": "executed", "key": step["key"], "parameters": step["parameters"],
                "wall_time_s": round(wall, 2), "executed_at": _dt.datetime.now(_dt.timezone.utc).isoformat(
                    timespec="seconds")}
            _write_manifest(manifest_path, manifest)
    finally:
        if env_root is None:
            os.environ.pop("FMROBUST_ROOT", None)
        else:
            os.environ["FMROBUST_ROOT"] = env_root
    manifest["seeds"] = {"seed": manifest["parameters"].get("seed")}
    _write_manifest(manifest_path, manifest)
    return manifest


def _write_manifest(path: Path, manifest: dict) -> None:
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")


def clean(profile: str | None = None, *, root: str | Path | None = None, results: bool = False) -> list[Path]:
    """Remove the book build, the cache and failed notebooks; with `results`, also the executed
    notebooks and ``results/<profile>/``. Returns what was removed."""
    root = Path(root).resolve() if root is not None else find_root()
    targets = [root / "_build", Path(os.environ.get("FMROBUST_CACHE", root / ".cache"))]
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


def main(argv: Sequence[str] | None = None) -> int:
    """The ``fmrobust`` command line (`fmlib.cli.main`)."""
    from .cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())

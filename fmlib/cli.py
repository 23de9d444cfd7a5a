"""The ``fmrobust`` command line (also ``python -m fmlib``): run, list and clean the study
(`fmlib.runner`), assess a user's model (`fmlib.assay`), and advise a model for a user's images
(`fmlib.advice`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat
import papermill
from nbconvert import HTMLExporter

from .advice import advise
from .advice.report import write_report
from .advice.robust import ATTACK_EPS_255
from .assay import NORMALIZATIONS, OUTPUTS
from .paths import find_root
from .profiles import PROFILE_NAMES, STRUCTURES
from .runner import NOTEBOOKS, StudyError, clean, plan, run

ASSAY_NOTEBOOK = "09_assess_your_model"


def assess_report(args) -> Path:
    """Execute the assay notebook for ``fmrobust assess`` and write ``report.html`` beside it."""
    root = Path(args.root).resolve() if args.root else find_root()
    for flag, value in (("--model", args.model), ("--weights", args.weights)):
        if value and not Path(value).is_file():
            raise FileNotFoundError(f"{flag}: no such file {value}")
    if args.weights and not args.factory:
        raise ValueError("--weights: a state dict needs --factory to build the model it belongs to")
    source = root / "notebooks" / f"{ASSAY_NOTEBOOK}.ipynb"
    if not source.exists():
        raise StudyError(f"assess: {source} is missing; run from the fmrobust repository or pass --root")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    executed = out / f"{ASSAY_NOTEBOOK}.ipynb"
    parameters = {"profile": args.profile, "structure": args.structure, "name": args.name,
                  "model_path": str(Path(args.model).resolve()) if args.model else "",
                  "factory": args.factory or "", "weights": str(Path(args.weights).resolve()) if args.weights else "",
                  "output": args.output, "in_channels": args.in_channels, "normalization": args.normalization,
                  "reference_root": str(root)}
    try:
        papermill.execute_notebook(str(source), str(executed), parameters=parameters, cwd=str(root),
                                   kernel_name="python3", progress_bar=True)
    except papermill.PapermillExecutionError as err:
        raise StudyError(f"assess: cell {err.exec_count} failed: {err.ename}: {err.evalue} "
                         f"(the executed notebook is in {executed})") from None
    exporter = HTMLExporter()
    exporter.exclude_input = True  # a report: tables, figures and text, not code
    notebook = nbformat.read(executed, as_version=4)
    for cell in notebook.cells:  # progress bars and warnings belong to the run, not to the report
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
    html, _ = exporter.from_notebook_node(notebook)
    report = out / "report.html"
    report.write_text(html, encoding="utf-8")
    return report


def advise_report(args) -> dict[str, Path]:
    """Run `fmlib.advice.advise` for ``fmrobust advise`` and write its report files to ``--out``."""
    before = os.environ.get("FMROBUST_ROOT")
    if args.root:  # the study whose cache holds the models, for this command only
        os.environ["FMROBUST_ROOT"] = str(Path(args.root).resolve())
    try:
        advice = advise(args.images, args.structure, profile=args.profile, channel=args.channel,
                        pixel_size_um=args.pixel_size_um, n_images=args.n_images, attacks=args.attacks,
                        attack_eps_255=args.attack_eps_255, seed=args.seed)
        written = write_report(advice, args.out, export=not args.no_export)
    finally:
        if before is None:
            os.environ.pop("FMROBUST_ROOT", None)
        else:
            os.environ["FMROBUST_ROOT"] = before
    print(advice.answer)
    return written


def _parse_set(items: Sequence[str]) -> dict:
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set: expected KEY=VALUE, got {item!r}")
        try:
            overrides[key] = json.loads(value)
        except ValueError:
            overrides[key] = value
    return overrides


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fmrobust", description="Benchmark of the robustness of segmentation networks on fluorescence "
                                     "microscopy images.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute the study's notebooks with papermill")
    p_run.add_argument("--profile", default="standard", choices=PROFILE_NAMES)
    p_run.add_argument("--only", nargs="+", metavar="NOTEBOOK", help="run only these notebooks")
    p_run.add_argument("--force", action="store_true", help="execute even up-to-date notebooks")
    p_run.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                       help="override a parameter (JSON value), e.g. --set seed=1 image_size=128")
    p_run.add_argument("--root", help="study folder (default: found from the current directory)")
    p_run.add_argument("--executor", default="serial", choices=("serial", "dask"),
                       help="where the training grid runs: in the training notebook (serial) or on a Dask cluster")
    p_run.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://host:8786 (default with "
                                           "--executor dask: a local cluster, one worker per core)")
    p_run.add_argument("--workers", type=int, help="workers of the local Dask cluster (default: one per core)")
    p_run.add_argument("--threads-per-job", type=int,
                       help="torch threads of each training job (default: all for serial, 1 for dask); the same "
                            "value gives the same results whichever executor ran the jobs")
    p_list = sub.add_parser("list", help="list the notebooks and whether each is up to date")
    p_list.add_argument("--profile", default="standard", choices=PROFILE_NAMES)
    p_list.add_argument("--root")
    p_assess = sub.add_parser(
        "assess", help="assess your own model: the study's corruptions and attacks, ranked among the reference models",
        description="Run your model through the study's assay (notebook 09_assess_your_model) and write the executed "
                    "notebook and a standalone HTML report to --out. WARNING: a TorchScript file or a --factory "
                    "import path runs its author's code; assess only models you trust. --weights state dicts are "
                    "loaded with torch.load(weights_only=True).")
    source = p_assess.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="TorchScript file of the model")
    source.add_argument("--factory", help="'package.module:function' returning the model (with --weights)")
    p_assess.add_argument("--weights", help="state-dict file for --factory")
    p_assess.add_argument("--structure", required=True, choices=STRUCTURES)
    p_assess.add_argument("--profile", default="standard", choices=PROFILE_NAMES)
    p_assess.add_argument("--out", required=True, help="folder for the executed notebook and report.html")
    p_assess.add_argument("--output", default="logits", choices=OUTPUTS, help="what the model returns")
    p_assess.add_argument("--in-channels", type=int, default=1, choices=(1, 3), help="input channels it expects")
    p_assess.add_argument("--normalization", default="none", choices=NORMALIZATIONS,
                          help="input normalization it expects")
    p_assess.add_argument("--name", default="your_model", help="the model's name in the report")
    p_assess.add_argument("--root", help="study folder with notebooks/ and results/<profile>/ (default: found "
                                         "from the current directory)")
    p_advise = sub.add_parser(
        "advise", help="which of the study's models to use on your own images (TIFF), ranked on a simulation of "
                       "your microscope",
        description="Estimate your acquisition from the images alone (noise, SNR, background, blur, object size), "
                    "simulate it with exact masks and the degradations such a microscope meets, check that the "
                    "simulation looks like your images, and rank the study's competent models on it. Writes "
                    "report.html, advice.json and the recommended model as TorchScript (model.pt) to --out.")
    p_advise.add_argument("images", nargs="+", help="TIFF files or folders of them (2D images or stacks of one "
                                                    "structure, raw counts, any bit depth)")
    p_advise.add_argument("--structure", required=True, choices=STRUCTURES)
    p_advise.add_argument("--out", required=True, help="folder for report.html, advice.json and model.pt")
    p_advise.add_argument("--profile", default="standard", choices=PROFILE_NAMES,
                          help="the study profile whose models are ranked (missing ones are trained first)")
    p_advise.add_argument("--channel", type=int, help="channel of a multi-channel stack that shows the structure")
    p_advise.add_argument("--pixel-size-um", type=float, help="pixel size, to check the object size")
    p_advise.add_argument("--n-images", type=int, help="matched images per condition (default: the profile's "
                                                       "test images per structure: 8 at standard)")
    p_advise.add_argument("--attacks", action="store_true",
                          help="also measure the leading models' robust IoU under the study's attack ensemble (a "
                               "minute or two per model on a CPU; reported beside the ranking, not part of it)")
    p_advise.add_argument("--attack-eps-255", type=float, default=ATTACK_EPS_255,
                          help="budget of --attacks in grey levels of 255 (default 2)")
    p_advise.add_argument("--seed", type=int, default=0)
    p_advise.add_argument("--no-export", action="store_true", help="do not write model.pt")
    p_advise.add_argument("--root", help="study folder whose cache holds the models (default: found from the "
                                         "current directory)")
    p_clean = sub.add_parser("clean", help="remove the book build, the cache and failed notebooks")
    p_clean.add_argument("--profile", choices=PROFILE_NAMES)
    p_clean.add_argument("--results", action="store_true",
                         help="also remove executed notebooks and results/<profile>/ (committed files!)")
    p_clean.add_argument("--root")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            if args.scheduler and args.executor != "dask":
                raise ValueError("--scheduler: needs --executor dask")
            manifest = run(args.profile, root=args.root, only=args.only, force=args.force,
                           overrides=_parse_set(args.set), executor=args.executor, scheduler=args.scheduler,
                           n_workers=args.workers, threads_per_job=args.threads_per_job)
            for name in args.only or NOTEBOOKS:
                entry = manifest["notebooks"][name]
                wall = entry.get("wall_time_s")
                print(f"{name:32s} {entry['status']:9s} {'' if wall is None else f'{wall:8.1f} s'}")
        elif args.command == "assess":
            report = assess_report(args)
            print(f"report: {report}")
        elif args.command == "advise":
            for name, path in advise_report(args).items():
                print(f"{name}: {path}")
        elif args.command == "list":
            root = Path(args.root).resolve() if args.root else find_root()
            for step in plan(args.profile, root):
                print(f"{step['name']:32s} {'up to date' if step['up_to_date'] else 'to run'}")
        elif args.command == "clean":
            for path in clean(args.profile, root=args.root, results=args.results):
                print(f"removed {path}")
    except (StudyError, ValueError, FileNotFoundError) as err:
        print(f"fmrobust: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

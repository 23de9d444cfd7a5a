"""The ``fmrobust`` command line: run, list and clean the study (`fmlib.study`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .study import NOTEBOOKS, PROFILE_NAMES, StudyError, clean, find_root, plan, run


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
    parser = argparse.ArgumentParser(prog="fmrobust", description="Benchmark of the robustness of segmentation networks on fluorescence microscopy images.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute the study's notebooks with papermill")
    p_run.add_argument("--profile", default="standard", choices=PROFILE_NAMES)
    p_run.add_argument("--only", nargs="+", metavar="NOTEBOOK", help="run only these notebooks")
    p_run.add_argument("--force", action="store_true", help="execute even up-to-date notebooks")
    p_run.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                       help="override a parameter (JSON value), e.g. --set seed=1 image_size=128")
    p_run.add_argument("--root", help="study folder (default: found from the current directory)")
    p_list = sub.add_parser("list", help="list the notebooks and whether each is up to date")
    p_list.add_argument("--profile", default="standard", choices=PROFILE_NAMES)
    p_list.add_argument("--root")
    p_clean = sub.add_parser("clean", help="remove the book build, the cache and failed notebooks")
    p_clean.add_argument("--profile", choices=PROFILE_NAMES)
    p_clean.add_argument("--results", action="store_true",
                         help="also remove executed notebooks and results/<profile>/ (committed files!)")
    p_clean.add_argument("--root")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            manifest = run(args.profile, root=args.root, only=args.only, force=args.force,
                           overrides=_parse_set(args.set))
            for name in args.only or NOTEBOOKS:
                entry = manifest["notebooks"][name]
                wall = entry.get("wall_time_s")
                print(f"{name:32s} {entry['status']:9s} {'' if wall is None else f'{wall:8.1f} s'}")
        elif args.command == "list":
            root = Path(args.root).resolve() if args.root else find_root()
            for step in plan(args.profile, root):
                print(f"{step['name']:32s} {'up to date' if step['up_to_date'] else 'to run'}")
        elif args.command == "clean":
            for path in clean(args.profile, root=args.root, results=args.results):
                print(f"removed {path}")
    except (StudyError, ValueError) as err:
        print(f"fmrobust: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

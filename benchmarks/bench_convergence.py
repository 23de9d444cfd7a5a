"""Benchmark: steps to the plateau and training throughput per architecture, with the standard
profile's training recipe (`fmlib.grid.train_config`, `fmlib.plateau`), on one structure.

    python benchmarks/bench_convergence.py [--structure mitochondria] [--models unet segformer ...]
                                           [--profile standard] [--workers 2] [--set key=value ...]

Each architecture trains in its own subprocess with one torch thread, `--workers` at a time: the way
the study's grid runs on the 2-core machine (`--executor dask --workers 2`), so the seconds here are
the seconds a standard run spends. It reports, per architecture: the steps run and whether the
plateau rule held (converged) or the cap cut the run, the step of the best validation IoU, the best
validation IoU, the clean test IoU (SNR 8), images per second of training (validation included)
and the wall time. The baseline of the same run is the fastest architecture's images per second
(each row's ``vs fastest``), so the ratios hold whatever the machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def measure(name: str, structure: str, profile: str, overrides: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    from fmlib import grid
    from fmlib.checkpoints import training_pool
    from fmlib.inference import predict_scores
    from fmlib.models import create_model
    from fmlib.profiles import model_width, resolve
    from fmlib.training import fit

    cfg = resolve(profile, **overrides)
    (x, y), val = training_pool(grid.data_spec(cfg, structure, "standard"))
    config = grid.train_config(cfg, "standard", model=name)
    torch.manual_seed(config.seed)
    start = time.perf_counter()
    result = fit(create_model(name, width=model_width(cfg, name)), (x, y), val, config, progress=False)
    wall = time.perf_counter() - start
    test = grid.test_set(cfg, structure)
    iou = float(predict_scores(result.model, test.images, test.masks)["iou"].mean())
    return {"model": name, "structure": structure, "steps": result.steps, "converged": result.converged,
            "best_step": result.best_step, "best_val_iou": result.best_val_iou, "test_iou": iou,
            "img_s": result.steps * config.batch_size / result.train_time_s, "wall_s": wall,
            "lr": config.lr, "warmup_steps": config.warmup_steps}


def _parse(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--structure", default="mitochondria")
    parser.add_argument("--profile", default="standard")
    parser.add_argument("--models", nargs="+")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], help="profile overrides, key=value (JSON values)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    overrides = _parse(args.set)
    if args.one:
        print(json.dumps(measure(args.one, args.structure, args.profile, overrides)))
        return
    from fmlib.models import list_models

    def run(name: str) -> dict:
        out = subprocess.run([sys.executable, __file__, "--one", name, "--structure", args.structure, "--profile",
                              args.profile, "--set", *args.set], capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    names = args.models or list_models()
    with ThreadPoolExecutor(args.workers) as pool:
        rows = []
        for row in pool.map(run, names):  # each row as soon as it (and those before it) finished
            print(json.dumps(row), flush=True)
            rows.append(row)
    fastest = max(r["img_s"] for r in rows)
    print(f"{args.structure}, profile {args.profile} {overrides or ''}, {args.workers} workers of one thread")
    print(f"{'model':15s}{'steps':>7s}{'conv.':>7s}{'best at':>9s}{'val IoU':>9s}{'test IoU':>10s}{'img/s':>8s}"
          f"{'vs fastest':>11s}{'wall s':>8s}")
    for r in rows:
        print(f"{r['model']:15s}{r['steps']:7d}{'yes' if r['converged'] else 'no':>7s}{r['best_step']:9d}"
              f"{r['best_val_iou']:9.3f}{r['test_iou']:10.3f}{r['img_s']:8.1f}{r['img_s'] / fastest:10.2f}x"
              f"{r['wall_s']:8.0f}")
    print(f"total training time {sum(r['wall_s'] for r in rows):.0f} s over {len(rows)} runs "
          f"(wall {max(r['wall_s'] for r in rows):.0f} s or more with {args.workers} workers)")


if __name__ == "__main__":
    main()

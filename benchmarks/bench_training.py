"""Benchmark: training throughput and peak memory per model, and the overhead of `fmlib.training.fit`
against a bare forward + backward + step loop on the same model and data, measured in the same run.

    python benchmarks/bench_training.py [--size 128] [--images 64] [--models unet sim_unet ...]

Each model runs in its own subprocess (so its peak resident memory is its own). Widths are those of
the standard profile. Both loops run one warm-up epoch (a pass over the images) that is not timed;
fit's epochs include its validation pass (one image here) and its random flips and rotations. The
two loops alternate for `--rounds` rounds and the overhead is the ratio of their median epoch times.
Goal: fit's overhead at most 1.10x the bare loop.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def measure(name: str, size: int, n_images: int, batch_size: int, epochs: int, rounds: int) -> dict:
    import torch

    from fmlib.models import count_parameters, create_model
    from fmlib.objectives import segmentation_loss
    from fmlib.profiles import STANDARD_WIDTHS
    from fmlib.synthesis import make_dataset
    from fmlib.training import TrainConfig, fit

    data = make_dataset("mitochondria", n_images, size, seed=0)
    val = (data.images[:1], data.masks[:1])
    width = STANDARD_WIDTHS.get(name, 1.0)
    x = torch.from_numpy(data.images[:, None])
    y = torch.from_numpy(data.masks[:, None].astype("float32"))

    def bare_epochs() -> list[float]:
        """The limit: the same model, optimizer, batches and loss (with auxiliary heads), no fit."""
        torch.manual_seed(0)
        model = create_model(name, width=width)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
        model.train()
        seconds = []
        for _ in range(epochs + 1):
            start = time.perf_counter()
            for i in range(0, n_images, batch_size):
                loss = segmentation_loss(model, x[i:i + batch_size], y[i:i + batch_size])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            seconds.append(time.perf_counter() - start)
        return seconds[1:]  # the first epoch warms up both loops alike and is left out of both

    def fit_epochs() -> list[float]:
        torch.manual_seed(0)
        per_epoch = n_images // batch_size  # one validation per pass over the images; no plateau can end it
        config = TrainConfig(max_steps=(epochs + 1) * per_epoch, eval_every=per_epoch, patience=epochs + 2,
                             batch_size=batch_size)
        result = fit(create_model(name, width=width), data, val, config, progress=False)
        return result.history.seconds.iloc[1:].tolist()  # per-epoch time includes fit's validation and augmentation

    # Alternate the order round by round, so that drifting clock speed or memory state favours neither
    # loop, and compare medians of epoch times: one slow epoch does not decide the ratio.
    bare, ours = [], []
    for r in range(rounds):
        for run in ((bare_epochs, fit_epochs) if r % 2 == 0 else (fit_epochs, bare_epochs)):
            (bare if run is bare_epochs else ours).extend(run())
    bare_s, ours_s = statistics.median(bare), statistics.median(ours)
    return {"model": name, "width": width, "parameters_m": count_parameters(create_model(name, width=width)) / 1e6,
            "bare_img_s": n_images / bare_s, "fit_img_s": n_images / ours_s, "overhead": ours_s / bare_s,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of both loops")
    parser.add_argument("--models", nargs="+")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.size, args.images, args.batch_size, args.epochs, args.rounds)))
        return
    from fmlib.models import list_models

    print(f"{'model':15s}{'width':>6s}{'params M':>10s}{'bare img/s':>12s}{'fit img/s':>11s}{'overhead':>10s}"
          f"{'peak MB':>9s}")
    for name in args.models or list_models():
        out = subprocess.run([sys.executable, __file__, "--one", name, "--size", str(args.size), "--images",
                              str(args.images), "--batch-size", str(args.batch_size), "--epochs", str(args.epochs),
                              "--rounds", str(args.rounds)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['model']:15s}{r['width']:6.2f}{r['parameters_m']:10.2f}{r['bare_img_s']:12.1f}"
              f"{r['fit_img_s']:11.1f}{r['overhead']:9.2f}x{r['peak_rss_mb']:9.0f}", flush=True)


if __name__ == "__main__":
    main()

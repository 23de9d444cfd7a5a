"""Benchmark on CUDA: training throughput in float32 and with bfloat16 mixed precision, and PGD time.

    python benchmarks/bench_gpu.py [--size 256] [--images 64] [--batch-size 8] [--models ...] [--json out.json]

For each model at its full (paper) width: images/s of `fmlib.training.fit` with
``mixed_precision=False`` and ``True`` (one untimed warm-up epoch each, then `--epochs` timed
epochs), their ratio, peak GPU memory, and the seconds per image of a 10-step PGD (float32, as in
the study). Needs a CUDA device; prints a clear message otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def measure(name: str, size: int, n_images: int, batch_size: int, epochs: int) -> dict:
    import torch

    from fmlib.attacks import PGD
    from fmlib.models import count_parameters, create_model
    from fmlib.synthesis import make_dataset
    from fmlib.training import TrainConfig, fit

    data = make_dataset("mitochondria", n_images, size, seed=0)
    val = (data.images[:batch_size], data.masks[:batch_size])
    row = {"model": name, "size": size, "batch_size": batch_size}
    for amp in (False, True):
        torch.manual_seed(0)
        torch.cuda.reset_peak_memory_stats()
        model = create_model(name)
        result = fit(model, data, val, TrainConfig(epochs=epochs + 1, batch_size=batch_size, mixed_precision=amp),
                     device="cuda", progress=False)
        seconds = float(result.history.seconds.iloc[1:].sum())
        key = "bf16" if amp else "fp32"
        row[f"{key}_img_s"] = epochs * n_images / seconds
        row[f"{key}_peak_gb"] = torch.cuda.max_memory_allocated() / 1e9
    row["parameters_m"] = count_parameters(model) / 1e6
    x = torch.from_numpy(data.images[:16, None]).cuda()
    y = torch.from_numpy(data.masks[:16, None].astype("float32")).cuda()
    attack = PGD(model.float(), 8 / 255, step_size=2 / 255, steps=10, seed=0)
    attack(x, y)
    torch.cuda.synchronize()
    start = time.perf_counter()
    attack(x, y)
    torch.cuda.synchronize()
    row["pgd10_ms_per_image"] = 1000 * (time.perf_counter() - start) / len(x)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--models", nargs="+")
    parser.add_argument("--json")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("bench_gpu: no CUDA device; this benchmark measures GPU training")
    from fmlib.models import list_models

    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(f"{'model':15s}{'params M':>9s}{'fp32 img/s':>11s}{'bf16 img/s':>11s}{'speed-up':>9s}{'fp32 GB':>8s}"
          f"{'bf16 GB':>8s}{'PGD-10 ms/img':>14s}")
    rows = []
    for name in args.models or list_models():
        r = measure(name, args.size, args.images, args.batch_size, args.epochs)
        rows.append(r)
        print(f"{name:15s}{r['parameters_m']:9.2f}{r['fp32_img_s']:11.1f}{r['bf16_img_s']:11.1f}"
              f"{r['bf16_img_s'] / r['fp32_img_s']:8.2f}x{r['fp32_peak_gb']:8.2f}{r['bf16_peak_gb']:8.2f}"
              f"{r['pgd10_ms_per_image']:14.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()

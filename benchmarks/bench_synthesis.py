"""Benchmark: synthesis throughput, against a naive blur + Poisson baseline measured in the same run.

    python benchmarks/bench_synthesis.py [--repeat 3]

For each structure it prints images per second at 128 x 128 and 512 x 512, the ratio of fmlib's
time per image to the baseline's (scipy.ndimage.gaussian_filter of a random density plus
numpy.random.poisson, the least a simulator must do), and the exponent of time against pixel count
over 64-512 px (1.0 = linear). Target on 2 CPU cores: >= 50 images/s at 128 x 128, linear cost.
"""

from __future__ import annotations

import argparse

import numpy as np
from _timing import best_of  # noqa: E402  (benchmarks/ is the script's folder)
from scipy import ndimage

from fmlib.synthesis import list_structures, make_dataset


def naive_baseline(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Blur a random density and draw Poisson noise, one image at a time."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size), np.uint16)
    for i in range(n):
        density = (rng.random((size, size)) > 0.7).astype(np.float32) * 100.0 + 10.0
        out[i] = rng.poisson(ndimage.gaussian_filter(density, 1.5))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    counts = {64: 64, 128: 32, 256: 8, 512: 4}
    print(f"{'structure':14s}{'size':>6s}{'img/s':>10s}{'baseline img/s':>16s}{'ratio':>8s}")
    for structure in list_structures():
        make_dataset(structure, 1, 64)  # warm-up: imports, caches
        per_image = {}
        for size, n in counts.items():
            t = best_of(lambda: make_dataset(structure, n, size, seed=1), args.repeat) / n  # noqa: B023 (called here)
            per_image[size] = t
            if size in (128, 512):
                base = best_of(lambda: naive_baseline(n, size), args.repeat) / n  # noqa: B023 (called here)
                print(f"{structure:14s}{size:6d}{1 / t:10.1f}{1 / base:16.1f}{t / base:8.1f}x")
        sizes = np.array(list(per_image))
        exponent = np.polyfit(np.log(sizes.astype(float) ** 2), np.log(list(per_image.values())), 1)[0]
        print(f"{structure:14s}  cost ~ pixels^{exponent:.2f} over {sizes.min()}-{sizes.max()} px")


if __name__ == "__main__":
    main()

"""Benchmark: fmlib corruptions against `imagecorruptions` (ImageNet-C code), in the same run.

    python benchmarks/bench_corruptions.py [--sizes 128 512] [--repeat 3]

fmlib's corruptions are timed in this interpreter on float images in [0, 1]. `imagecorruptions`
1.1.2 is timed in its own environment, `benchmarks/.venv-imagecorruptions` (Python 3.10 with
scikit-image 0.19.3 and numpy < 2, the last stack it works with), which this script creates on first
use; it is never a dependency of fmlib. It gets uint8 grayscale images, its documented input.
For each shared corruption it prints ms per image for both and the ratio (imagecorruptions / fmlib,
> 1 means fmlib is faster), and lists the corruptions that fail in imagecorruptions instead of
hiding them. Goal: faster on every shared corruption; no fmlib corruption over 5 ms at 128 x 128.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from fmlib.corruptions import corrupt, list_corruptions
from fmlib.synthesis import make_dataset

HERE = Path(__file__).resolve().parent
OTHER_ENV = HERE / ".venv-imagecorruptions"
# imagecorruptions name -> fmlib name
SHARED = {"gaussian_noise": "read_noise", "shot_noise": "photon_noise", "impulse_noise": "hot_pixels",
          "defocus_blur": "defocus", "motion_blur": "motion_blur", "gaussian_blur": "gaussian_blur",
          "contrast": "low_contrast", "brightness": "brightness", "pixelate": "undersampling",
          "jpeg_compression": "jpeg_compression"}

OTHER_SCRIPT = textwrap.dedent('''
    import json, sys, time, warnings
    import numpy as np
    warnings.filterwarnings("ignore")
    from imagecorruptions import corrupt, get_corruption_names
    sizes, repeat, n = json.loads(sys.argv[1])
    rng = np.random.default_rng(0)
    result = {}
    for name in get_corruption_names("all"):
        for size in sizes:
            images = (rng.random((n, size, size)) * 255).astype(np.uint8)
            try:
                corrupt(images[0], corruption_name=name, severity=3)
                best = float("inf")
                for _ in range(repeat):
                    start = time.perf_counter()
                    for image in images:
                        corrupt(image, corruption_name=name, severity=3)
                    best = min(best, (time.perf_counter() - start) / n)
                result[f"{name}@{size}"] = {"ms": best * 1e3}
            except Exception as err:  # report, do not hide
                result[f"{name}@{size}"] = {"error": f"{type(err).__name__}: {err}"[:160]}
    print(json.dumps(result))
''')


def _python310() -> str:
    """A working Python 3.10: $IMAGECORRUPTIONS_PYTHON, python3.10 on PATH, or a pyenv install."""
    candidates = [os.environ.get("IMAGECORRUPTIONS_PYTHON"), shutil.which("python3.10"),
                  *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10")))]
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "--version"], capture_output=True).returncode == 0:
            return candidate
    raise SystemExit("a Python 3.10 is needed for the imagecorruptions environment (it breaks on newer stacks); "
                     "set IMAGECORRUPTIONS_PYTHON")


def other_environment() -> Path:
    python = OTHER_ENV / "bin" / "python"
    if python.exists():
        return python
    base = _python310()
    subprocess.run([base, "-m", "venv", str(OTHER_ENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "imagecorruptions==1.1.2",
                    "scikit-image==0.19.3", "numpy<2", "scipy<1.12"], check=True)
    return python


def time_fmlib(name: str, images: np.ndarray, repeat: int) -> float:
    corrupt(images[:1], name, 3, rng=0)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        corrupt(images, name, 3, rng=0)
        best = min(best, (time.perf_counter() - start) / len(images))
    return best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--images", type=int, default=8)
    args = parser.parse_args()
    python = other_environment()
    other = json.loads(subprocess.run([str(python), "-c", OTHER_SCRIPT,
                                       json.dumps([args.sizes, args.repeat, args.images])],
                                      check=True, capture_output=True, text=True).stdout)
    ours = {}
    for size in args.sizes:
        images = make_dataset("mitochondria", args.images, size, seed=0).images
        for name in list_corruptions():
            ours[f"{name}@{size}"] = time_fmlib(name, images, args.repeat)

    print("Shared corruptions, severity 3, ms per grayscale image (ratio > 1: fmlib faster)")
    print(f"{'imagecorruptions':20s}{'fmlib':20s}{'size':>6s}{'theirs':>10s}{'ours':>10s}{'ratio':>9s}")
    for theirs, mine in SHARED.items():
        for size in args.sizes:
            entry = other[f"{theirs}@{size}"]
            t_ours = ours[f"{mine}@{size}"]
            if "error" in entry:
                print(f"{theirs:20s}{mine:20s}{size:6d}{'FAILED':>10s}{t_ours:10.2f}       -   {entry['error']}")
            else:
                print(f"{theirs:20s}{mine:20s}{size:6d}{entry['ms']:10.2f}{t_ours:10.2f}{entry['ms'] / t_ours:8.1f}x")
    print("\nEvery fmlib corruption, ms per image:")
    for name in list_corruptions():
        cells = "".join(f"{ours[f'{name}@{size}']:10.2f}" for size in args.sizes)
        print(f"  {name:22s}{cells}")
    failed = sorted({k.split('@')[0] for k, v in other.items() if "error" in v})
    print(f"\nimagecorruptions failures ({len(failed)}): {', '.join(failed) or 'none'}")
    slowest = max(list_corruptions(), key=lambda n: ours.get(f"{n}@128", 0))
    if 128 in args.sizes:
        print(f"slowest fmlib corruption at 128 x 128: {slowest} ({ours[f'{slowest}@128']:.2f} ms)")


if __name__ == "__main__":
    sys.exit(main())

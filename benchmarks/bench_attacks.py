"""Benchmark: fmlib PGD-10 against a bare forward+backward loop and torchattacks PGD-10, same run.

    python benchmarks/bench_attacks.py [--model unet] [--size 128] [--batch 8]

On the same model (standard-profile width) and batch:
- the limit: 10 x (forward, BCE loss, gradient with respect to the input), nothing else;
- fmlib's `PGD` with 10 iterations;
- torchattacks' PGD with 10 iterations, installed for this benchmark only into
  `benchmarks/.venv-torchattacks` (pip --target, no dependencies: it uses this torch). torchattacks
  uses cross-entropy, which on a one-logit segmentation model has a zero gradient: it is timed
  here, not trusted (its perturbation is checked and reported).
Goal: fmlib within 1.10x of the bare loop and no slower than torchattacks. Prints the ratios.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch
from _timing import best_of  # noqa: E402  (benchmarks/ is the script's folder)
from torch.nn import functional as F

from fmlib.attacks import PGD
from fmlib.models import create_model
from fmlib.profiles import STANDARD_WIDTHS
from fmlib.synthesis import make_dataset

HERE = Path(__file__).resolve().parent
TORCHATTACKS = HERE / ".venv-torchattacks"


def torchattacks_module():
    if not (TORCHATTACKS / "torchattacks").exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(TORCHATTACKS),
                        "torchattacks==3.5.1"], check=True)
    sys.path.insert(0, str(TORCHATTACKS))
    import torchattacks

    return torchattacks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="unet")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = create_model(args.model, width=STANDARD_WIDTHS.get(args.model, 1.0)).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    data = make_dataset("nuclei", args.batch, args.size, seed=0)
    x = torch.from_numpy(data.images[:, None])
    y = torch.from_numpy(data.masks[:, None].astype("float32"))
    eps, step, steps = 8 / 255, 2 / 255, 10

    def bare():
        xa = x.clone()
        for _ in range(steps):
            xa.requires_grad_(True)
            loss = F.binary_cross_entropy_with_logits(model(xa), y)
            (grad,) = torch.autograd.grad(loss, xa)
            xa = xa.detach()

    ours_attack = PGD(model, eps, step_size=step, steps=steps)
    t_bare = best_of(bare, args.repeat)
    t_ours = best_of(lambda: ours_attack(x, y), args.repeat)
    torchattacks = torchattacks_module()
    theirs_attack = torchattacks.PGD(model, eps=eps, alpha=step, steps=steps, random_start=True)
    # With one logit the only valid class index is 0: cross-entropy is then identically zero.
    labels = torch.zeros_like(y[:, 0], dtype=torch.long)
    t_theirs = best_of(lambda: theirs_attack(x, labels), args.repeat)
    xg = x.clone().requires_grad_(True)
    ce = torch.nn.CrossEntropyLoss()(model(xg), labels)
    (ce_grad,) = torch.autograd.grad(ce, xg)
    print(f"model {args.model} (width {STANDARD_WIDTHS.get(args.model, 1.0)}), batch {args.batch} x {args.size}^2, "
          f"PGD-10, eps 8/255")
    print(f"  bare forward+backward loop : {t_bare * 1e3:8.1f} ms")
    print(f"  fmlib PGD                  : {t_ours * 1e3:8.1f} ms   {t_ours / t_bare:.2f}x the bare loop")
    print(f"  torchattacks PGD           : {t_theirs * 1e3:8.1f} ms   {t_theirs / t_bare:.2f}x the bare loop")
    print(f"  fmlib / torchattacks       : {t_ours / t_theirs:.2f}x")
    print(f"  torchattacks' cross-entropy gradient on this one-logit model: max |grad| = {ce_grad.abs().max():.1e} "
          "(its 'attack' is only its random start)")


if __name__ == "__main__":
    main()

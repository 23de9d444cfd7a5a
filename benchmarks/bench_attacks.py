"""Benchmark: fmlib PGD-10 against a bare forward+backward loop and torchattacks PGD-10, and the
ensemble's gradient-free Square member against its gradient members, same run.

    python benchmarks/bench_attacks.py [--model unet] [--size 128] [--batch 8] [--queries 500]

On the same model (standard-profile width) and batch:
- the limit: 10 x (forward, BCE loss, gradient with respect to the input), nothing else;
- fmlib's `PGD` with 10 iterations;
- torchattacks' PGD with 10 iterations, installed for this benchmark only into
  `benchmarks/.venv-torchattacks` (pip --target, no dependencies: it uses this torch). torchattacks
  uses cross-entropy, which on a one-logit segmentation model has a zero gradient: it is timed
  here, not trusted (its perturbation is checked and reported).
Goal: fmlib within 1.10x of the bare loop and no slower than torchattacks. Prints the ratios.

The ensemble's members, on the same model and batch (`fmlib.attacks.worst_case`):
- the limit of a query attack: `--queries` bare forward passes without gradient;
- `Square` with `--queries` queries per image (it stops early only on an image it fully fools);
- one APGD member (50 iterations, BCE), and the whole gradient part of the ensemble at the standard
  profile's settings without continuation (FGSM, I-FGSM, PGD-10, APGD-50 on three losses, one random
  restart of the best loss), timed once.
Prints seconds per image, forward passes per image, and Square's cost as a ratio of each.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch
from _timing import best_of  # noqa: E402  (benchmarks/ is the script's folder)
from torch.nn import functional as F

from fmlib.attacks import APGD, PGD, Square, worst_case
from fmlib.inference import predict_scores
from fmlib.models import create_model
from fmlib.profiles import PROFILES, STANDARD_WIDTHS
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


class Calibrated(torch.nn.Module):
    """A threshold of the image at `level` plus the untrained network's logits, scaled down: an untrained
    network predicts nothing (IoU 0, nothing for the ensemble to attack); this model segments the nuclei
    about as well as a trained one (IoU near 0.9, rarely fooled outright), at the network's cost."""

    def __init__(self, net: torch.nn.Module, level: float):
        super().__init__()
        self.net, self.level = net, level

    def forward(self, x):
        return 20 * (x - self.level) + 1e-3 * self.net(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="unet")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--queries", type=int, default=PROFILES["standard"]["square_queries"])
    parser.add_argument("--skip-torchattacks", action="store_true", help="offline: leave torchattacks out")
    args = parser.parse_args()
    torch.manual_seed(0)
    net = create_model(args.model, width=STANDARD_WIDTHS.get(args.model, 1.0)).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    data = make_dataset("nuclei", args.batch, args.size, seed=0)
    x = torch.from_numpy(data.images[:, None])
    y = torch.from_numpy(data.masks[:, None].astype("float32"))
    model = Calibrated(net, float(x[y == 0].mean() + x[y == 1].mean()) / 2).eval()
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
    print(f"model {args.model} (width {STANDARD_WIDTHS.get(args.model, 1.0)}), batch {args.batch} x {args.size}^2, "
          f"PGD-10, eps 8/255")
    print(f"  bare forward+backward loop : {t_bare * 1e3:8.1f} ms")
    print(f"  fmlib PGD                  : {t_ours * 1e3:8.1f} ms   {t_ours / t_bare:.2f}x the bare loop")
    if not args.skip_torchattacks:
        compare_torchattacks(model, x, y, eps, step, steps, t_bare, t_ours, args.repeat)
    ensemble_members(model, x, y, eps, args.queries, args.repeat)


def compare_torchattacks(model, x, y, eps, step, steps, t_bare, t_ours, repeat) -> None:
    torchattacks = torchattacks_module()
    theirs_attack = torchattacks.PGD(model, eps=eps, alpha=step, steps=steps, random_start=True)
    # With one logit the only valid class index is 0: cross-entropy is then identically zero.
    labels = torch.zeros_like(y[:, 0], dtype=torch.long)
    t_theirs = best_of(lambda: theirs_attack(x, labels), repeat)
    xg = x.clone().requires_grad_(True)
    ce = torch.nn.CrossEntropyLoss()(model(xg), labels)
    (ce_grad,) = torch.autograd.grad(ce, xg)
    print(f"  torchattacks PGD           : {t_theirs * 1e3:8.1f} ms   {t_theirs / t_bare:.2f}x the bare loop")
    print(f"  fmlib / torchattacks       : {t_ours / t_theirs:.2f}x")
    print(f"  torchattacks' cross-entropy gradient on this one-logit model: max |grad| = {ce_grad.abs().max():.1e} "
          "(its 'attack' is only its random start)")


def ensemble_members(model, x, y, eps: float, queries: int, repeat: int) -> None:
    n = len(x)

    def forwards():
        with torch.no_grad():
            for _ in range(queries):
                model(x)

    square = Square(model, eps, queries=queries)
    apgd = APGD(model, eps, steps=50, loss="bce")
    t_forwards = best_of(forwards, repeat)
    t_square = best_of(lambda: square(x, y), repeat)
    t_apgd = best_of(lambda: apgd(x, y), repeat)
    used = float(square.queries_used.float().mean())
    start = time.perf_counter()
    _, table = worst_case(model, x, y, eps, steps=50, restarts=2, restart_losses="best", max_steps=50)
    t_gradient = time.perf_counter() - start
    clean = predict_scores(model, x, y)["iou"]
    print(f"ensemble members, eps 8/255, {n} images of clean IoU {clean.mean():.3f} (threshold + untrained network; "
          f"{table.member.nunique()} gradient members ran)")
    print(f"  {queries} bare forward passes    : {t_forwards / n:8.3f} s/image")
    print(f"  Square, {queries} queries        : {t_square / n:8.3f} s/image   {used:.0f} forward passes/image   "
          f"{t_square / t_forwards:.2f}x the bare forward passes")
    print(f"  APGD-50 (one member, BCE)  : {t_apgd / n:8.3f} s/image   51 forward+backward passes/image   "
          f"Square = {t_square / t_apgd:.2f}x")
    print(f"  gradient members, standard : {t_gradient / n:8.3f} s/image (timed once, no continuation)   "
          f"Square = {t_square / t_gradient:.2f}x, {t_square / (t_square + t_gradient):.0%} of the ensemble")


if __name__ == "__main__":
    main()

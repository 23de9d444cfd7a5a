"""Square Attack (Andriushchenko et al., ECCV 2020) for per-pixel binary segmentation.

A score-based attack: it reads the model's logits, never a gradient, so masked or shattered gradients
(a hard threshold, a quantizer, SegNet's max-unpooling indices) cannot stop it. AutoAttack includes it
for that reason, and so does the ensemble (`fmlib.attacks.worst_case`), after its gradient members.

Each query proposes one random change of the current point inside a square window, per image, and
keeps it when it lowers the loss:

- L-inf: start from vertical stripes of +-eps; a proposal sets a square of side s to one random
  vertex (+eps or -eps) of the budget (the other vertex when the square is already there).
- L2: start from a grid of tiles, each a pair of opposite "pyramids" of random sign, scaled to the
  budget; a proposal moves the perturbation's mass from a second square into the first (a new pyramid
  of random sign plus what the first held) and scales the whole perturbation back to the budget.

A square covers a share ``p`` of the image (side ``round(sqrt(p * H * W))``): the published schedule
starts at ``p_init`` and halves ``p`` after 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 of
10,000 queries, rescaled to the query budget as AutoAttack does (`p_schedule`).

Loss (`SQUARE_LOSSES`): by default ``"margin"``, the mean over pixels of the signed logit margin
``m = z * (2 y - 1)`` (positive where the pixel is right), clamped below at ``-kappa``. Lowering it
pushes every pixel that is still right across the threshold, and a pixel wrong by ``kappa`` no longer
counts, so the queries go to the pixels still right. The ensemble's ``"bce"`` and ``"jaccard"`` losses
(`fmlib.attacks.apgd.LOSSES`) can be raised instead. Whatever the loss, each image keeps the point of
lowest IoU it reached, and an image whose IoU reaches zero (fully fooled, as in the ensemble) is no
longer queried.
"""

from __future__ import annotations

import math

import torch

from .._checks import check_choice, check_int, check_real
from ..inference import eval_mode, logit_scores, model_device
from .apgd import LOSSES
from .base import Attack, check_inputs

#: The losses Square can follow: the clamped logit margin (lowered) or an ensemble loss (raised).
SQUARE_LOSSES = ("margin", "bce", "jaccard")
#: AutoAttack's share of the image covered by the first squares.
P_INIT = 0.8
#: Queries (of 10,000) after which the schedule halves p.
_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_schedule(p_init: float, query: int, queries: int) -> float:
    """The share of the image that the square of iteration `query` (0-based) covers, of `queries`
    iterations: `p_init`, halved at each of 10, 50, 200, ... 8000 of 10,000 iterations (rescaled).

    >>> [p_schedule(0.8, q, 1000) for q in (0, 2, 10, 100, 999)]
    [0.8, 0.4, 0.2, 0.05, 0.0015625]
    """
    p_init = check_real("p_init", p_init, low=0.0, high=1.0, low_inclusive=False)
    queries = check_int("queries", queries, low=1)
    at = int(check_int("query", query, low=0) / queries * 10000)
    return p_init / 2 ** sum(at > b for b in _HALVINGS)


def square_side(p: float, height: int, width: int, norm: str) -> int:
    """Side of a square covering a share `p` of an image: at least 1 (L-inf) or an odd number of at
    least 3 (L2, whose pyramid needs a centre), at most the image's shorter side."""
    side = round(math.sqrt(p * height * width))
    side = max(side, 1) if norm == "linf" else max(side, 3) + (max(side, 3) % 2 == 0)
    return min(side, height, width)


def pyramid(side: int) -> torch.Tensor:
    """The L2 update pattern of a `side` x `side` square: its top half a pyramid of weights
    ``sum_{k >= d} 1 / (k + 1)^2`` (d: distance to its centre in the max norm), its bottom half the
    same with the opposite sign, unit L2 norm."""

    def block(rows: int, cols: int) -> torch.Tensor:
        levels = max(rows // 2, cols // 2) + 1
        weights = torch.flip(torch.cumsum(torch.flip(1.0 / torch.arange(1, levels + 1.0) ** 2, [0]), 0), [0])
        i, j = torch.arange(rows)[:, None], torch.arange(cols)[None, :]
        out = weights[torch.maximum((i - rows // 2).abs(), (j - cols // 2).abs())]
        return out / out.norm().clamp_min(1e-12)

    out = torch.cat([block(side // 2, side), -block(side - side // 2, side)])
    return out / out.norm()


class Square(Attack):
    """Square Attack on one loss of `SQUARE_LOSSES`, in L-inf or L2: random square updates, no gradient.

    Parameters
    ----------
    model : torch.nn.Module
        Maps (N, 1, H, W) images in [0, 1] to (N, 1, H, W) logits.
    eps : float
        Budget (image intensity for L-inf, per-image L2 norm), >= 0.
    queries : int
        Forward passes per image, the initial point included (>= 1); an image fully fooled (IoU 0)
        stops early.
    norm : {"linf", "l2"}
    p_init : float
        Share of the image, in (0, 1], that the first squares cover (AutoAttack's 0.8).
    loss : {"margin", "bce", "jaccard"}
    kappa : float
        The margin loss counts a wrong pixel's margin down to ``-kappa`` only (>= 0).
    seed : int
        Seed of every random draw (a ``torch.Generator``); the same seed gives the same images.

    ``iou_trace`` holds the mean best IoU after each query of the last call; ``queries_used`` the
    forward passes that each image of the last call took (N,).

    Raises
    ------
    ValueError
        If an argument is out of range (`eps`, `queries`, `p_init`, `kappa`, `seed`) or not a known
        choice (`norm`, `loss`), naming it.

    Examples
    --------
    >>> net = torch.nn.Conv2d(1, 1, 3, padding=1)
    >>> x, y = torch.rand(2, 1, 32, 32), (torch.rand(2, 1, 32, 32) > 0.5).float()
    >>> adv = Square(net, 8 / 255, queries=20, seed=0)(x, y)
    >>> bool((adv - x).abs().max() <= 8 / 255 + 1e-6)
    True
    """

    def __init__(self, model: torch.nn.Module, eps: float, *, queries: int = 500, norm: str = "linf",
                 p_init: float = P_INIT, loss: str = "margin", kappa: float = 0.0, seed: int = 0):
        queries = check_int("queries", queries, low=1, high=100000)
        super().__init__(model, eps, steps=queries, step_size=eps, norm=norm, random_start=True, seed=seed)
        self.queries = queries
        self.p_init = check_real("p_init", p_init, low=0.0, high=1.0, low_inclusive=False)
        self.loss_name = check_choice("loss", loss, SQUARE_LOSSES)
        self.kappa = check_real("kappa", kappa, low=0.0)
        self.name = "square" + ("-l2" if norm == "l2" else "")
        self.iou_trace: list[float] = []
        self.queries_used = torch.zeros(0, dtype=torch.long)

    def perturb(self, images: torch.Tensor, masks: torch.Tensor, *, trace: bool = False) -> torch.Tensor:
        """Adversarial versions of `images` (N, 1, H, W) in [0, 1] for ground truth `masks`: per image,
        the point of lowest IoU reached."""
        x, y = check_inputs(images, masks)
        if self.eps == 0:
            self.queries_used = torch.zeros(len(x), dtype=torch.long)
            return x.clone()
        device = model_device(self.model)
        with eval_mode(self.model), torch.no_grad():
            return self._run(x.to(device), y.to(device))

    def _objective(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per image, the value the attack lowers."""
        if self.loss_name == "margin":
            return (logits * (2 * y - 1)).clamp_min(-self.kappa).flatten(1).mean(1)
        return -LOSSES[self.loss_name](logits, y, 1, 1)

    def _evaluate(self, x_adv: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x_adv)
        iou = torch.as_tensor(logit_scores(logits, y)["iou"], dtype=x_adv.dtype, device=x_adv.device)
        return self._objective(logits, y), iou

    def _run(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        current = self._start(x, gen)
        loss, iou = self._evaluate(current, y)
        best_x, best_iou = current.clone(), iou.clone()
        used = torch.ones(len(x), dtype=torch.long)
        self.iou_trace = [float(best_iou.mean())]
        for q in range(1, self.queries):
            idx = (best_iou > 0).nonzero().flatten()
            if not len(idx):
                break
            side = square_side(p_schedule(self.p_init, q - 1, max(self.queries - 1, 1)), *x.shape[-2:], self.norm)
            propose = self._linf_step if self.norm == "linf" else self._l2_step
            candidate = propose(x[idx], current[idx], side, gen)
            new_loss, new_iou = self._evaluate(candidate, y[idx])
            used[idx.cpu()] += 1
            better = new_loss < loss[idx]
            loss[idx[better]], current[idx[better]] = new_loss[better], candidate[better]
            lower = new_iou < best_iou[idx]
            best_iou[idx[lower]], best_x[idx[lower]] = new_iou[lower], candidate[lower]
            self.iou_trace.append(float(best_iou.mean()))
        self.queries_used = used
        return best_x

    def _draw_signs(self, shape, gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
        return (torch.randint(0, 2, shape, generator=gen) * 2 - 1).to(like.device, like.dtype)

    def _windows(self, n: int, height: int, width: int, side: int, gen: torch.Generator, device):
        """Index tensors (batch, rows, columns) of one random `side` x `side` square per image."""
        top = torch.randint(0, height - side + 1, (n,), generator=gen)
        left = torch.randint(0, width - side + 1, (n,), generator=gen)
        steps = torch.arange(side)
        rows, cols = (top[:, None] + steps)[:, :, None], (left[:, None] + steps)[:, None, :]
        return torch.arange(n)[:, None, None].to(device), rows.to(device), cols.to(device)

    def _start(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n, _, height, width = x.shape
        if self.norm == "linf":  # vertical stripes of +-eps
            return (x + self.eps * self._draw_signs((n, 1, 1, width), gen, x)).clamp(0, 1)
        side = max(min(height, width) // 5, 1)
        tiles_h, tiles_w = height // side, width // side
        delta = torch.zeros_like(x)
        for a in range(tiles_h):
            for b in range(tiles_w):
                top, left = (height - tiles_h * side) // 2 + a * side, (width - tiles_w * side) // 2 + b * side
                pattern = pyramid(side).to(x.device, x.dtype)
                if torch.rand(1, generator=gen).item() > 0.5:
                    pattern = pattern.T
                delta[:, :, top:top + side, left:left + side] += pattern * self._draw_signs((n, 1, 1, 1), gen, x)
        return (x + self.eps * delta / delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)).clamp(0, 1)

    def _linf_step(self, x: torch.Tensor, current: torch.Tensor, side: int, gen: torch.Generator) -> torch.Tensor:
        b, rows, cols = self._windows(len(x), *x.shape[-2:], side, gen, x.device)
        signs = self._draw_signs((len(x), 1, 1), gen, x)
        window = (x[b, 0, rows, cols] + self.eps * signs).clamp(0, 1)
        unchanged = ((window - current[b, 0, rows, cols]).abs() < 1e-7).flatten(1).all(1)
        signs[unchanged] *= -1  # the square already sits on that vertex: take the other one
        candidate = current.clone()
        candidate[b, 0, rows, cols] = (x[b, 0, rows, cols] + self.eps * signs).clamp(0, 1)
        return candidate

    def _l2_step(self, x: torch.Tensor, current: torch.Tensor, side: int, gen: torch.Generator) -> torch.Tensor:
        n = len(x)
        delta = current - x
        b, rows, cols = self._windows(n, *x.shape[-2:], side, gen, x.device)
        _, rows2, cols2 = self._windows(n, *x.shape[-2:], side, gen, x.device)
        first = delta[b, 0, rows, cols]
        both = torch.zeros_like(delta[:, 0])
        both[b, rows, cols], both[b, rows2, cols2] = 1.0, 1.0
        in_windows = (delta[:, 0] * both).flatten(1).norm(dim=1)
        outside = (self.eps**2 - delta.flatten(1).norm(dim=1) ** 2).clamp_min(0)
        pattern = pyramid(side).to(x.device, x.dtype).expand(n, side, side).clone()
        flip = torch.rand(n, generator=gen) > 0.5
        pattern[flip.to(x.device)] = pattern[flip.to(x.device)].transpose(1, 2)
        new = pattern * self._draw_signs((n, 1, 1), gen, x) + first / first.flatten(1).norm(dim=1).clamp_min(
            1e-12).view(-1, 1, 1)
        new = new / new.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1)
        new = new * (outside + in_windows**2).sqrt().view(-1, 1, 1)
        delta[b, 0, rows2, cols2] = 0.0
        delta[b, 0, rows, cols] = new
        scale = self.eps / delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        return (x + delta * scale.view(-1, 1, 1, 1)).clamp(0, 1)

"""The advice as files: ``report.html`` (standalone), ``advice.json`` and the recommended model as
TorchScript (``model.pt``), and the figures they share with the book."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

# No backend is forced here: the book's notebooks draw these figures inline, and matplotlib falls
# back to Agg by itself on a machine without a display.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..inference import predict
from ..sizing.prediction import SIDE_MULTIPLE
from .core import Advice, export_torchscript, recommended_model

#: The largest crop of the user's first frame that the report segments and shows (px per side).
SHOWN_SIDE_PX = 512


def shown_crop(frame: np.ndarray) -> np.ndarray:
    """The top-left crop of `frame` that the report shows: sides a multiple of the models' 32, at most
    `SHOWN_SIDE_PX`."""
    h, w = (min(SHOWN_SIDE_PX, s) // SIDE_MULTIPLE * SIDE_MULTIPLE for s in frame.shape)
    return frame[:h, :w]


def images_figure(advice: Advice, model=None):
    """The user's first frame beside a matched synthetic image and its mask, and, given `model`, the
    model's segmentation of the user's frame. Returns the figure."""
    crop = shown_crop(advice.frames[0])
    panels = [(crop, f"your image ({advice.names[0]})", "gray"),
              (advice.matched.images[0], "matched simulation", "gray"),
              (advice.matched.masks[0], "its exact mask", "gray")]
    if model is not None:
        mask = predict(model, crop[None].astype(np.float32))[0]
        r = advice.recommendation
        panels.append((mask, f"{r['model']} ({r['regime']}) on your image", "gray"))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 3.2))
    for ax, (image, title, cmap) in zip(axes, panels):
        low, high = np.percentile(image, [1, 99.5]) if image.dtype.kind == "f" else (0, 1)
        ax.imshow(image, cmap=cmap, vmin=low, vmax=max(high, low + 1e-9))
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig


def ranking_figure(advice: Advice):
    """Each candidate's IoU averaged over the conditions, with its 95 % CI; the recommended one in
    colour (grey for all where the advice refused). Returns the figure."""
    table = advice.ranking
    y = np.arange(len(table))
    fig, ax = plt.subplots(figsize=(6.0, 0.32 * len(table) + 1.2))
    ax.errorbar(table.score, y, xerr=[table.score - table.low, table.high - table.score], fmt="none", ecolor="0.4",
                capsize=2)
    colours = ["C0" if (advice.recommendation and rank == 1) else "0.5" for rank in table["rank"]]
    ax.scatter(table.score, y, color=colours, zorder=3, s=20)
    ax.set_yticks(y, [f"{m} ({r})" for m, r in zip(table.model, table.regime)])
    ax.invert_yaxis()
    ax.set_xlabel(f"IoU averaged over {len(advice.conditions)} matched conditions (95 % CI)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def by_condition_text(advice: Advice) -> pd.DataFrame:
    """One row per candidate in ranking order, one column per condition: "IoU [low, high]"."""
    t = advice.by_condition
    cells = t.assign(value=[f"{i:.2f} [{lo:.2f}, {hi:.2f}]" for i, lo, hi in zip(t.iou, t.low, t.high)])
    wide = cells.pivot(index=["model", "regime"], columns="condition", values="value")
    wide = wide[list(dict.fromkeys(t.condition))]
    order = pd.MultiIndex.from_frame(advice.ranking[["model", "regime"]])
    return wide.reindex(order).reset_index().rename_axis(columns=None)


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _table(frame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.3g}", border=0, classes="table")


def html_report(advice: Advice, model=None) -> str:
    """The standalone HTML page of `advice` (figures embedded)."""
    e = html.escape
    estimate = advice.estimate.assign(estimate=advice.estimate.estimate.round(3), low=advice.estimate.low.round(3),
                                      high=advice.estimate.high.round(3))
    ranking = advice.ranking.round(3)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>fmrobust advice</title><style>"
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.45}"
        ".answer{font-size:1.25em;padding:.8em;border-left:6px solid #1f77b4;background:#f3f7fb}"
        ".refused{border-left-color:#d62728;background:#fbf3f3}table{border-collapse:collapse;font-size:.85em}"
        "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}</style></head><body>",
        f"<h1>Which model for your {e(advice.structure)} images?</h1>",
        f"<p class='answer{' refused' if advice.recommendation is None else ''}'>{e(advice.answer)}</p>",
    ]
    if advice.caveats:
        parts.append("<h2>Caveats</h2><ul>" + "".join(f"<li>{e(c)}</li>" for c in advice.caveats) + "</ul>")
    parts += [
        f"<p>{len(advice.names)} frame(s) read; the models are the competent ones of the <b>{e(advice.profile)}</b> "
        "profile of the fmrobust study. The scores are measured on images simulated like yours, with exact "
        "masks, not on your images: they hold as far as the simulation is like your microscope (the realism "
        "check below).</p>",
        "<h2>Your images and their simulation</h2>", _png(images_figure(advice, model)),
        "<h2>Ranking</h2>", _png(ranking_figure(advice)), _table(ranking),
        "<h2>Conditions tested</h2><ul>" + "".join(f"<li><b>{e(k)}</b>: {e(v)}</li>"
                                                 for k, v in advice.conditions.items()) + "</ul>",
        "<p>Each candidate's IoU per condition, with its 95 % CI over seeds, then images:</p>",
        _table(by_condition_text(advice)),
        "<h2>Your acquisition, estimated from the images</h2>"
        "<p>Median over frames, with a 95 % bootstrap interval over frames.</p>", _table(estimate),
        "<h2>Realism check</h2><p>Label-free distances between your images and the matched simulation; "
        "a distance above its threshold stops the recommendation.</p>",
        _table(advice.realism[["statistic", "real", "synthetic", "distance", "threshold", "within"]].round(3)),
    ]
    if advice.robust is not None:
        eps = advice.robust.eps_255.iloc[0]
        parts += [f"<h2>Under attack</h2><p>The leading candidates under the study's attack ensemble at {eps:g}/255, "
                  "on the first matched images of the profile's attacked count (95 % CI over those images; one "
                  "training seed each). This worst case does not enter the ranking.</p>",
                  _table(advice.robust.round(3))]
    if len(advice.excluded):
        parts += ["<h2>Models left out (not competent)</h2>", _table(advice.excluded.round(3))]
    if advice.recommendation is not None:
        parts.append("<h2>Use the recommended model</h2><pre>import torch, tifffile\n"
                     "model = torch.jit.load('model.pt').eval()\n"
                     "image = torch.from_numpy(tifffile.imread('your.tif').astype('float32'))[None, None]\n"
                     "mask = model(image)[0, 0] > 0   # logits; sides a multiple of 32\n</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(advice: Advice, out: str | Path, *, export: bool = True) -> dict[str, Path]:
    """Write ``advice.json``, ``report.html`` and (where something is recommended and `export`)
    ``model.pt`` into `out`; returns their paths by name."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {"json": out / "advice.json"}
    written["json"].write_text(json.dumps(advice.to_json(), indent=2), encoding="utf-8")
    model = recommended_model(advice) if advice.recommendation is not None else None
    if model is not None and export:
        written["model"] = export_torchscript(model, out / "model.pt")
    written["html"] = out / "report.html"
    written["html"].write_text(html_report(advice, model), encoding="utf-8")
    return written

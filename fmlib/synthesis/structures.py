"""Ground-truth structures: seeded generators of fluorophore density and masks.

Each generator draws one field of view on a supersampled grid and returns a `Scene`:
occupancy (the exact ground truth), relative fluorophore density, instance labels where the
structure has instances, and a table of the objects it drew with their sizes in µm.

Coordinates: the field spans ``shape_px * pixel_size_um`` µm; supersampled pixel ``i`` covers
``[i, i + 1)`` in supersampled units, i.e. ``[i / s, (i + 1) / s)`` camera pixels. Objects are drawn
in µm and rasterized at the centres of the supersampled pixels, so the mask and the image share
one grid and no half-pixel shift can creep in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, spatial
from skimage import draw


@dataclass
class Scene:
    """One field of view on the supersampled grid."""

    occupancy: np.ndarray          # (H*s, W*s) bool: inside a structure
    density: np.ndarray            # (H*s, W*s) float32: relative fluorophore density, 0 outside
    labels: np.ndarray | None      # (H*s, W*s) int32 instance ids, 0 = background; None for networks
    objects: list[dict] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# Shared drawing helpers
# ----------------------------------------------------------------------------------------------

def _smooth_noise(shape: tuple[int, int], sigma_px: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian random field with zero mean and unit standard deviation, correlation `sigma_px`."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_px, mode="wrap")
    return (noise - noise.mean()) / (noise.std() + 1e-12)


def _fourier_blob(center_ss: np.ndarray, radius_ss: float, aspect: float, angle: float,
                  roughness: float, rng: np.random.Generator, n_vertices: int = 64) -> np.ndarray:
    """Vertices (row, col) of a smooth irregular ellipse: a Fourier-perturbed radius."""
    theta = np.linspace(0.0, 2.0 * np.pi, n_vertices, endpoint=False)
    k = np.arange(2, 6)
    amp = rng.normal(0.0, roughness / k)
    phase = rng.uniform(0.0, 2.0 * np.pi, k.size)
    r = 1.0 + (amp[:, None] * np.cos(k[:, None] * theta + phase[:, None])).sum(axis=0)
    # Axes a >= b with a * b = 1, so the area stays that of a disc of radius `radius_ss`.
    a, b = math.sqrt(aspect), 1.0 / math.sqrt(aspect)
    x, y = a * r * np.cos(theta), b * r * np.sin(theta)
    c, s = math.cos(angle), math.sin(angle)
    rows = center_ss[0] + radius_ss * (s * x + c * y)
    cols = center_ss[1] + radius_ss * (c * x - s * y)
    return np.stack([rows, cols], axis=1)


def _fill_polygon(vertices: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixels whose centres lie inside the polygon, rasterized within its bounding box only."""
    # skimage puts pixel i's centre at coordinate i; ours is at i + 0.5.
    v = vertices - 0.5
    r0 = max(int(np.floor(v[:, 0].min())), 0)
    c0 = max(int(np.floor(v[:, 1].min())), 0)
    r1 = min(int(np.ceil(v[:, 0].max())) + 1, shape[0])
    c1 = min(int(np.ceil(v[:, 1].max())) + 1, shape[1])
    if r1 <= r0 or c1 <= c0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    rr, cc = draw.polygon(v[:, 0] - r0, v[:, 1] - c0, (r1 - r0, c1 - c0))
    return rr + r0, cc + c0


def _random_path(start: np.ndarray, heading: float, length: float, step: float,
                 persistence: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth random curve (worm-like chain) of `length`, sampled every `step` (same units)."""
    n = max(int(math.ceil(length / step)), 1)
    turns = rng.normal(0.0, math.sqrt(step / persistence), n)
    angles = heading + np.cumsum(turns)
    steps = np.stack([np.sin(angles), np.cos(angles)], axis=1) * step
    return np.vstack([start, start + np.cumsum(steps, axis=0)])


def _tubes(points: np.ndarray, radius: np.ndarray, value: np.ndarray, ident: np.ndarray,
           shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rasterize tubes around centre-line points (supersampled units), each with its own radius.

    `points` (P, 2) samples every centre line densely; `radius`, `value` and `ident` (P,) give, per
    point, the tube radius, fluorophore density and instance id. One Euclidean distance transform
    serves every tube: each pixel takes the radius, value and id of its nearest centre-line pixel,
    and is inside if it lies within that radius. Returns occupancy (bool), value (float32), id (int32).
    """
    pad = int(math.ceil(radius.max(initial=1.0))) + 2
    padded = (shape[0] + 2 * pad, shape[1] + 2 * pad)
    idx = np.floor(points).astype(np.int64) + pad
    keep = (idx[:, 0] >= 0) & (idx[:, 0] < padded[0]) & (idx[:, 1] >= 0) & (idx[:, 1] < padded[1])
    r, c = idx[keep, 0], idx[keep, 1]
    if r.size == 0:
        return np.zeros(shape, bool), np.zeros(shape, np.float32), np.zeros(shape, np.int32)
    seeds = np.zeros(padded, dtype=bool)
    seeds[r, c] = True
    radius_at = np.zeros(padded, dtype=np.float32)
    value_at = np.zeros(padded, dtype=np.float32)
    id_at = np.zeros(padded, dtype=np.int32)
    radius_at[r, c], value_at[r, c], id_at[r, c] = radius[keep], value[keep], ident[keep]
    crop = (slice(pad, pad + shape[0]), slice(pad, pad + shape[1]))
    dist, (ir, ic) = ndimage.distance_transform_edt(~seeds, return_indices=True)
    nearest = (ir[crop], ic[crop])
    inside = dist[crop] <= radius_at[nearest]
    return inside, np.where(inside, value_at[nearest], 0).astype(np.float32), np.where(inside, id_at[nearest], 0)


def _concat(paths: list[np.ndarray], radii: list[float], values: list[float], ids: list[int]):
    """Flatten per-path centre lines and attributes into the per-point arrays `_tubes` takes."""
    counts = [len(p) for p in paths]
    return (np.concatenate(paths) if paths else np.zeros((0, 2)), np.repeat(np.asarray(radii, float), counts),
            np.repeat(np.asarray(values, float), counts), np.repeat(np.asarray(ids, np.int32), counts))


# ----------------------------------------------------------------------------------------------
# Nuclei
# ----------------------------------------------------------------------------------------------

def nuclei(shape_px: tuple[int, int], pixel_size_um: float, supersample: int, rng: np.random.Generator, *,
           n_nuclei: tuple[int, int] = (5, 40), diameter_um: tuple[float, float] = (5.0, 12.0),
           aspect: tuple[float, float] = (1.0, 1.6), roughness: float = 0.06,
           min_separation: float = 0.9, mitotic_fraction: float = 0.08,
           brightness_cv: float = 0.25, texture_contrast: float = 0.25,
           texture_scale_um: float = 0.6) -> Scene:
    """Cell nuclei: smooth irregular ellipses with chromatin texture.

    The number of nuclei is drawn uniformly from `n_nuclei`; they are placed by rejection so that
    centres are at least `min_separation` times the sum of their radii apart (touching allowed).
    When the field is too small for that many, fewer are placed; the objects table records them.
    A fraction `mitotic_fraction` are mitotic: 30 % smaller, twice as bright, coarser chromatin.
    """
    s = supersample
    shape = (shape_px[0] * s, shape_px[1] * s)
    um_to_ss = s / pixel_size_um
    target = int(rng.integers(n_nuclei[0], n_nuclei[1] + 1))
    placed: list[tuple[np.ndarray, float]] = []
    objects = []
    labels = np.zeros(shape, dtype=np.int32)
    density = np.zeros(shape, dtype=np.float32)
    texture = _smooth_noise(shape, texture_scale_um * um_to_ss, rng)
    for _ in range(target * 30):
        if len(placed) == target:
            break
        mitotic = rng.random() < mitotic_fraction
        diameter = rng.uniform(*diameter_um) * (0.7 if mitotic else 1.0)
        radius = 0.5 * diameter * um_to_ss
        center = rng.uniform((0.0, 0.0), shape)
        if any(np.hypot(*(center - c)) < min_separation * (radius + r) for c, r in placed):
            continue
        vertices = _fourier_blob(center, radius, rng.uniform(*aspect), rng.uniform(0, np.pi), roughness, rng)
        rr, cc = _fill_polygon(vertices, shape)
        free = labels[rr, cc] == 0          # touching nuclei: the one drawn first keeps the overlap
        rr, cc = rr[free], cc[free]
        if rr.size == 0:
            continue
        ident = len(placed) + 1
        placed.append((center, radius))
        brightness = rng.lognormal(0.0, brightness_cv) * (2.0 if mitotic else 1.0)
        contrast = texture_contrast * (2.0 if mitotic else 1.0)
        labels[rr, cc] = ident
        density[rr, cc] = brightness * np.maximum(1.0 + contrast * texture[rr, cc], 0.1)
        objects.append({"id": ident, "kind": "mitotic" if mitotic else "interphase",
                        "diameter_um": diameter, "brightness": brightness,
                        "center_um": (center / um_to_ss).round(3).tolist()})
    return Scene(occupancy=labels > 0, density=density, labels=labels, objects=objects)


# ----------------------------------------------------------------------------------------------
# Mitochondria
# ----------------------------------------------------------------------------------------------

def mitochondria(shape_px: tuple[int, int], pixel_size_um: float, supersample: int, rng: np.random.Generator, *,
                 density_per_100um2: float = 8.0, width_um: tuple[float, float] = (0.3, 0.7),
                 length_um: tuple[float, float] = (1.0, 10.0), branch_fraction: float = 0.3,
                 punctum_fraction: float = 0.2, punctum_diameter_um: tuple[float, float] = (0.4, 0.8),
                 persistence_um: float = 3.0, brightness_cv: float = 0.2) -> Scene:
    """Mitochondria: curvilinear tubules (worm-like chains), some branched, some fragmented puncta.

    Tubule length (main path plus branch) is log-uniform in `length_um`; width uniform in
    `width_um`. A fraction `branch_fraction` carry one side branch (30-60 % of the main length,
    leaving at 40-80 degrees); a fraction `punctum_fraction` are round fragments instead.
    """
    s = supersample
    shape = (shape_px[0] * s, shape_px[1] * s)
    um_to_ss = s / pixel_size_um
    area_um2 = shape_px[0] * shape_px[1] * pixel_size_um**2
    n_objects = max(1, int(rng.poisson(density_per_100um2 * area_um2 / 100.0)))
    step = 0.5  # supersampled pixels between centre-line samples: the line stays connected
    paths, radii, values, ids, objects = [], [], [], [], []
    for ident in range(1, n_objects + 1):
        start = rng.uniform((0.0, 0.0), shape)
        brightness = rng.lognormal(0.0, brightness_cv)
        if rng.random() < punctum_fraction:
            diameter = rng.uniform(*punctum_diameter_um)
            paths.append(start[None, :])
            radii.append(0.5 * diameter * um_to_ss)
            values.append(brightness)
            ids.append(ident)
            objects.append({"id": ident, "kind": "punctum", "width_um": diameter, "length_um": diameter,
                            "brightness": brightness, "branched": False})
            continue
        width = rng.uniform(*width_um)
        total = math.exp(rng.uniform(math.log(length_um[0]), math.log(length_um[1])))
        branched = rng.random() < branch_fraction
        fraction = rng.uniform(0.3, 0.6) if branched else 0.0
        main_len = total / (1.0 + fraction)
        heading = rng.uniform(0, 2 * np.pi)
        main = _random_path(start, heading, main_len * um_to_ss, step, persistence_um * um_to_ss, rng)
        pieces = [main]
        if branched:
            k = int(rng.integers(len(main) // 5, max(len(main) * 4 // 5, len(main) // 5 + 1)))
            local = math.atan2(*(main[min(k + 1, len(main) - 1)] - main[max(k - 1, 0)]))
            turn = rng.uniform(np.deg2rad(40), np.deg2rad(80)) * rng.choice([-1, 1])
            pieces.append(_random_path(main[k], local + turn, fraction * main_len * um_to_ss, step,
                                       persistence_um * um_to_ss, rng))
        for piece in pieces:
            paths.append(piece)
            radii.append(0.5 * width * um_to_ss)
            values.append(brightness)
            ids.append(ident)
        objects.append({"id": ident, "kind": "tubule", "width_um": width, "length_um": total,
                        "brightness": brightness, "branched": branched})
    occupancy, density, labels = _tubes(*_concat(paths, radii, values, ids), shape)
    return Scene(occupancy=occupancy, density=density, labels=labels, objects=objects)


# ----------------------------------------------------------------------------------------------
# Endoplasmic reticulum
# ----------------------------------------------------------------------------------------------

def _beziers(p0: np.ndarray, p1: np.ndarray, bow: np.ndarray, step: float) -> np.ndarray:
    """Quadratic Bezier curves from p0[k] to p1[k] (E, 2) whose control points are offset by bow[k]
    along the normal; sampled at least every `step`. Returns (E, K, 2)."""
    chord = p1 - p0
    length = np.hypot(chord[:, 0], chord[:, 1])[:, None]
    normal = np.stack([-chord[:, 1], chord[:, 0]], axis=1) / (length + 1e-12)
    control = 0.5 * (p0 + p1) + bow[:, None] * normal
    k = int(length.max(initial=0.0) / step) + 2
    t = np.linspace(0.0, 1.0, k)[None, :, None]
    return (1 - t) ** 2 * p0[:, None] + 2 * (1 - t) * t * control[:, None] + t**2 * p1[:, None]


def er(shape_px: tuple[int, int], pixel_size_um: float, supersample: int, rng: np.random.Generator, *,
       mesh_size_um: float = 1.5, width_um: tuple[float, float] = (0.2, 0.35), edge_dropout: float = 0.2,
       bow: float = 0.15, n_sheets: tuple[int, int] = (0, 2), sheet_diameter_um: tuple[float, float] = (1.5, 4.0),
       sheet_brightness: float = 0.8) -> Scene:
    """Endoplasmic reticulum: a network of thin tubules with three-way junctions, plus sheets.

    Tubules are the edges of a Voronoi tessellation of jittered grid points (mesh size
    `mesh_size_um`), whose vertices are three-way junctions; each edge bows by a random fraction
    (`bow`, standard deviation relative to its length) and a fraction `edge_dropout` of edges is
    removed, which opens larger polygons as in real cells. Sheets are smooth irregular patches.
    The network is one object, so there are no instance labels.
    """
    s = supersample
    shape = (shape_px[0] * s, shape_px[1] * s)
    um_to_ss = s / pixel_size_um
    spacing = mesh_size_um * um_to_ss
    margin = 2 * spacing
    gy = np.arange(-margin, shape[0] + margin, spacing)
    gx = np.arange(-margin, shape[1] + margin, spacing)
    grid = np.stack(np.meshgrid(gy, gx, indexing="ij"), axis=-1).reshape(-1, 2)
    points = grid + rng.uniform(-0.45, 0.45, grid.shape) * spacing
    vor = spatial.Voronoi(points)
    ridges = np.array([r for r in vor.ridge_vertices if -1 not in r])
    p0, p1 = vor.vertices[ridges[:, 0]], vor.vertices[ridges[:, 1]]
    # Edges of the outer cells can reach far-away vertices: keep those with both ends near the field.
    lo, hi = np.array([-margin, -margin]), np.array(shape) + margin
    visible = ((p0 > lo) & (p0 < hi)).all(1) & ((p1 > lo) & (p1 < hi)).all(1)
    keep = visible & (rng.random(len(ridges)) >= edge_dropout)
    p0, p1 = p0[keep], p1[keep]
    lengths = np.hypot(*(p1 - p0).T)
    curves = _beziers(p0, p1, rng.normal(0.0, bow, len(p0)) * lengths, 0.5)
    radii = 0.5 * rng.uniform(*width_um, len(p0)) * um_to_ss
    n_samples = curves.shape[1]
    occupancy, density, _ = _tubes(curves.reshape(-1, 2), np.repeat(radii, n_samples),
                                   np.ones(curves.shape[0] * n_samples), np.ones(curves.shape[0] * n_samples, np.int32),
                                   shape)
    objects = [{"kind": "tubule", "width_um": 2 * r / um_to_ss, "length_um": length / um_to_ss}
               for r, length in zip(radii, lengths)]
    for _ in range(int(rng.integers(n_sheets[0], n_sheets[1] + 1))):
        diameter = rng.uniform(*sheet_diameter_um)
        vertices = _fourier_blob(rng.uniform((0.0, 0.0), shape), 0.5 * diameter * um_to_ss,
                                 rng.uniform(1.0, 1.8), rng.uniform(0, np.pi), 0.12, rng)
        rr, cc = _fill_polygon(vertices, shape)
        occupancy[rr, cc] = True
        density[rr, cc] = np.maximum(density[rr, cc], sheet_brightness)
        objects.append({"kind": "sheet", "width_um": diameter, "length_um": diameter})
    return Scene(occupancy=occupancy, density=density, labels=None, objects=objects)

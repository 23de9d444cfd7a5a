"""The registered structures: each one's generator (`fmlib.synthesis.structures`), the microscope it
is typically imaged with, and the default parameters of its generator."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import structures


@dataclass(frozen=True)
class StructureSpec:
    """A registered structure: its generator, typical microscope and default parameters."""

    name: str
    generate: object
    description: str
    has_instances: bool
    pixel_size_um: float
    wavelength_nm: float
    numerical_aperture: float
    refractive_index: float
    params: dict = field(default_factory=dict)


STRUCTURES: dict[str, StructureSpec] = {
    "nuclei": StructureSpec(
        "nuclei", structures.nuclei, "Cell nuclei (Hoechst/DAPI), 20x/0.75 air objective, 2x2 binning",
        True, pixel_size_um=0.5, wavelength_nm=461.0, numerical_aperture=0.75, refractive_index=1.0,
        params=dict(n_nuclei=(5, 40), diameter_um=(5.0, 12.0), aspect=(1.0, 1.6), roughness=0.06,
                    min_separation=0.9, mitotic_fraction=0.08, brightness_cv=0.25, texture_contrast=0.25,
                    texture_scale_um=0.6)),
    "mitochondria": StructureSpec(
        "mitochondria", structures.mitochondria, "Mitochondria (MitoTracker Red), 100x/1.4 oil objective",
        True, pixel_size_um=0.1, wavelength_nm=599.0, numerical_aperture=1.4, refractive_index=1.518,
        params=dict(density_per_100um2=8.0, width_um=(0.3, 0.7), length_um=(1.0, 10.0), branch_fraction=0.3,
                    punctum_fraction=0.2, punctum_diameter_um=(0.4, 0.8), persistence_um=3.0,
                    brightness_cv=0.2)),
    "er": StructureSpec(
        "er", structures.er, "Endoplasmic reticulum (GFP-Sec61b), 100x/1.4 oil objective",
        False, pixel_size_um=0.1, wavelength_nm=510.0, numerical_aperture=1.4, refractive_index=1.518,
        params=dict(mesh_size_um=1.5, width_um=(0.2, 0.35), edge_dropout=0.2, bow=0.15, n_sheets=(0, 2),
                    sheet_diameter_um=(1.5, 4.0), sheet_brightness=0.8)),
}


def list_structures() -> list[str]:
    """Names of the registered structures."""
    return list(STRUCTURES)

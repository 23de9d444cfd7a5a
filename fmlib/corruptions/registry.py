"""The registry of corruptions: one `Corruption` per name, in registration order.

The family modules register their corruptions with `register_corruption`; the order in which
`fmlib.corruptions` imports them is the order of `list_corruptions` and of the book's tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from .._checks import check_choice

FAMILIES = ("noise", "optics", "illumination", "sampling", "artifacts")
SEVERITIES = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class Corruption:
    """A registered corruption: its function and the metadata the book's tables come from.

    ``fn(x, value, rngs, acquisition)`` takes a (N, H, W) batch, the parameter at one severity, one
    generator per image and the `fmlib.corruptions.acquisition._Acquisition` behind the batch. It
    returns the corrupted batch, or for a `physical` corruption ``(electrons, display_signal_e)``.
    """

    name: str
    family: str
    parameter: str
    unit: str
    severities: tuple
    description: str
    fn: Callable
    physical: bool = False

    def value(self, severity: int):
        """The parameter value at `severity` (1-5)."""
        return self.severities[severity - 1]


CORRUPTIONS: dict[str, Corruption] = {}


def register_corruption(name: str, family: str, parameter: str, unit: str, severities: tuple, description: str,
                        physical: bool = False) -> Callable[[Callable], Callable]:
    """Decorator: register ``fn(x, value, rngs, acquisition)`` as corruption `name`.

    Parameters
    ----------
    name : str
        The registry key (``corrupt(..., name, ...)``).
    family : str
        One of `FAMILIES`.
    parameter, unit : str
        What the severities measure, for the tables.
    severities : tuple
        The parameter at severities 1-5, from mild to severe.
    description : str
        One sentence for the tables.
    physical : bool
        The function works in photo-electrons and returns ``(electrons, display_signal_e)``.
    """
    assert family in FAMILIES and len(severities) == 5

    def decorate(fn):
        CORRUPTIONS[name] = Corruption(name, family, parameter, unit, tuple(severities), description, fn, physical)
        return fn

    return decorate


def list_corruptions(family: str | None = None) -> list[str]:
    """Names of the registered corruptions, optionally of one family."""
    if family is not None:
        check_choice("family", family, FAMILIES)
    return [n for n, c in CORRUPTIONS.items() if family is None or c.family == family]


def describe_corruptions() -> pd.DataFrame:
    """The registry as a pandas DataFrame: one row per corruption, one column per severity."""
    rows = [{"corruption": c.name, "family": c.family, "parameter": c.parameter, "unit": c.unit,
             **{f"severity {s}": c.value(s) for s in SEVERITIES}, "description": c.description}
            for c in CORRUPTIONS.values()]
    return pd.DataFrame(rows)

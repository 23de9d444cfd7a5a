"""fmlib: the library behind fmrobust, a robustness benchmark for segmentation of fluorescence
microscopy images (after Zhong, Li & Yang, BMC Bioinformatics 2024).

The user's entry points are importable from the top level, and load on first use, so that
``import fmlib`` stays light (no torch until a model is needed):

- `advise`: which of the benchmark's models to use on your own images (`fmlib.advice.advise`);
- `assess`: your own model's robustness, ranked among the benchmark's (`fmlib.assay.assess`).

Examples
--------
>>> import fmlib
>>> fmlib.advise is fmlib.advice.advise
True
"""

from __future__ import annotations

import importlib
import warnings

from tqdm import TqdmWarning

__version__ = "0.1.0"

# Without ipywidgets, tqdm.auto draws text progress bars in a notebook, which is what papermill and the
# book want; its warning saying so would otherwise head every executed notebook.
warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)

#: Top-level name -> the module that defines it. This module is no input of any cached result
#: (`fmlib.cache.UNHASHED_MODULES`): code whose results are cached imports from the defining module.
_ENTRY_POINTS = {"advise": "fmlib.advice", "assess": "fmlib.assay"}

__all__ = ["__version__", *_ENTRY_POINTS]


def __getattr__(name: str):
    # PEP 562: resolved on first access, so that importing fmlib does not import torch.
    if name in _ENTRY_POINTS:
        return getattr(importlib.import_module(_ENTRY_POINTS[name]), name)
    raise AttributeError(f"module 'fmlib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ENTRY_POINTS))

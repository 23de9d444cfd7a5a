"""Where the study lives: its root folder, the cache folder and the real data.

Three environment variables move them: ``FMROBUST_ROOT`` (the study: a folder with ``_toc.yml`` and
``notebooks/``), ``FMROBUST_CACHE`` (trained models and evaluation tables, default ``<root>/.cache``)
and ``FMROBUST_DATA`` (the real images, default ``<root>/data/real``).
"""

from __future__ import annotations

import os
from pathlib import Path


class RootNotFoundError(FileNotFoundError):
    """No fmrobust study folder at or above the current directory, and no ``FMROBUST_ROOT``."""


def find_root(start: str | Path | None = None) -> Path:
    """The study's root folder: ``$FMROBUST_ROOT``, or the first folder at or above `start` (default:
    the current directory) holding ``_toc.yml`` and ``notebooks/``.

    Raises RootNotFoundError (a FileNotFoundError) when there is none.
    """
    env = os.environ.get("FMROBUST_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").exists() and (folder / "notebooks").is_dir():
            return folder
    raise RootNotFoundError(f"no fmrobust study (a folder with _toc.yml and notebooks/) at or above {here}; "
                            "run from the repository or set FMROBUST_ROOT")


def cache_dir(root: str | Path | None = None) -> Path:
    """``$FMROBUST_CACHE``, else ``.cache/`` of the study (`root`, or `find_root`), else
    ``~/.cache/fmrobust`` (outside a study)."""
    env = os.environ.get("FMROBUST_CACHE")
    if env:
        return Path(env)
    if root is not None:
        return Path(root) / ".cache"
    try:
        return find_root() / ".cache"
    except RootNotFoundError:
        return Path.home() / ".cache" / "fmrobust"


def data_dir() -> Path:
    """``$FMROBUST_DATA``, else ``data/real`` of the study: the real images and their provenance."""
    env = os.environ.get("FMROBUST_DATA")
    if env:
        return Path(env)
    return find_root() / "data" / "real"

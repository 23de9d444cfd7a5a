"""Provenance of a study run: the git commit, the environment, and the manifest that records them.

``results/<profile>/manifest.json`` holds the profile's parameters and seed, the package versions
and hardware, the git commit (and whether the work tree had uncommitted changes), the hash of the
``fmlib`` source, and per notebook its key, status and wall time.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .cache import PACKAGE, code_hash

#: The packages whose versions a manifest records.
PACKAGES = ("fmlib", "torch", "torchvision", "timm", "segmentation-models-pytorch", "numpy", "scipy", "scikit-image",
            "pandas", "seaborn", "tifffile", "papermill", "jupyter-book", "myst-nb")


def git_commit(root: Path) -> dict:
    """The commit of `root` and whether the work tree has uncommitted changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, check=True).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def environment() -> dict:
    """Package versions and hardware, for the manifest."""
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    return {"python": platform.python_version(), "platform": platform.platform(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "packages": packages}


def source_hash() -> str:
    """Hash of the whole ``fmlib`` source (every .py file), recorded in the manifest."""
    return code_hash(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py"))


def load_manifest(path: Path) -> dict:
    """The manifest at `path`, or an empty one when there is none (or it is unreadable)."""
    if path.exists():
        try:
            return json.loads(path.read_text())
        except ValueError:
            pass
    return {}


def write_manifest(path: Path, manifest: dict) -> None:
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")

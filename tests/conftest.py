import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _study_root():
    """Tests run against this repository's data and notebooks, whatever the current directory."""
    os.environ.setdefault("FMROBUST_ROOT", str(ROOT))
    yield


@pytest.fixture
def root() -> Path:
    return ROOT

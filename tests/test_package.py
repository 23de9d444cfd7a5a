"""The package's top level: the user's entry points (`fmlib.advise`, `fmlib.assess`), loaded on first use."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fmlib
from fmlib.cache import UNHASHED_MODULES

ROOT = Path(__file__).resolve().parents[1]


def test_the_entry_points_are_the_functions_of_their_modules():
    from fmlib.advice import advise
    from fmlib.assay import assess

    assert fmlib.advise is advise and fmlib.assess is assess
    assert {"advise", "assess", "__version__"} <= set(dir(fmlib)) and {"advise", "assess"} <= set(fmlib.__all__)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'advice_of'"):
        fmlib.advice_of  # noqa: B018


def test_importing_fmlib_does_not_import_torch():
    code = "import sys, fmlib; assert 'torch' not in sys.modules, 'torch imported'; print(fmlib.__version__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == fmlib.__version__


def test_cached_code_imports_from_the_defining_module():
    # fmlib/__init__.py is no input of any cache key (fmlib.cache.UNHASHED_MODULES): a notebook or module
    # that ran fmlib.advise through it would be cached under a key blind to the advice's code.
    pattern = re.compile(r"\bfmlib\.(advise|assess)\b|from fmlib import [^\n]*\b(advise|assess)\b")
    code = {str(p.relative_to(ROOT)): "".join("".join(c["source"]) for c in json.loads(p.read_text())["cells"]
                                              if c["cell_type"] == "code")
            for p in sorted((ROOT / "notebooks").glob("*.ipynb"))}
    code |= {f"fmlib/{name}": p.read_text() for p in sorted((ROOT / "fmlib").rglob("*.py"))
             if (name := str(p.relative_to(ROOT / "fmlib"))) not in UNHASHED_MODULES}
    users = [name for name, text in code.items() if pattern.search(text)]
    assert not users, f"use fmlib.advice.advise / fmlib.assay.assess in cached code: {users}"

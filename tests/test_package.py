"""The package's top level: the user's entry points (`fmlib.advise`, `fmlib.assess`), loaded on first use."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import fmlib
from fmlib.cache import UNHASHED_MODULES

ENTRY_POINTS = ("advise", "assess")

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


def _top_level_uses(code: str) -> list[str]:
    """Where `code` reaches an entry point through the package's top level: ``from fmlib import advise``
    (one line or several), or ``fmlib.advise`` / ``fm.advise`` after ``import fmlib [as fm]``."""
    tree = ast.parse(code)
    aliases = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for a in node.names if a.name == "fmlib"}
    found = [f"from fmlib import {a.name}" for node in ast.walk(tree)
             if isinstance(node, ast.ImportFrom) and node.module == "fmlib" and not node.level
             for a in node.names if a.name in ENTRY_POINTS]
    found += [f"{node.value.id}.{node.attr}" for node in ast.walk(tree) if isinstance(node, ast.Attribute)
              and isinstance(node.value, ast.Name) and node.value.id in aliases and node.attr in ENTRY_POINTS]
    return found


def test_the_check_of_top_level_uses_finds_each_spelling():
    assert _top_level_uses("from fmlib import (\n    grid,\n    advise,\n)") == ["from fmlib import advise"]
    assert _top_level_uses("import fmlib as fm\nfm.assess(model)") == ["fm.assess"]
    assert _top_level_uses("from fmlib.advice import advise\nimport fmlib.grid\nfmlib.grid.evaluation") == []


def test_cached_code_imports_from_the_defining_module():
    # fmlib/__init__.py is no input of any cache key (fmlib.cache.UNHASHED_MODULES): a notebook or module
    # that ran fmlib.advise through it would be cached under a key blind to the advice's code.
    code = {}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        # IPython magics are not Python: drop their lines
        code[str(path.relative_to(ROOT))] = "\n".join(line for c in cells if c["cell_type"] == "code"
                                                     for line in "".join(c["source"]).splitlines()
                                                     if not line.lstrip().startswith(("%", "!")))
    code |= {f"fmlib/{name}": p.read_text() for p in sorted((ROOT / "fmlib").rglob("*.py"))
             if (name := str(p.relative_to(ROOT / "fmlib"))) not in UNHASHED_MODULES}
    users = {name: uses for name, text in code.items() if (uses := _top_level_uses(text))}
    assert not users, f"use fmlib.advice.advise / fmlib.assay.assess in cached code: {users}"

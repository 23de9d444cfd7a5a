"""One content hash for every cache key: the configuration of a result and the code it depends on.

Every cached artefact of the study (a trained model, an evaluation table, an executed notebook) is
named by `content_key`: a hash of its parameters (any JSON-serialisable payload) and of the source
of every ``fmlib`` module that its computation runs (`module_closure`: the modules named, and every
module they import, function-local imports included). A change to any of them, `fmlib.metrics`
included, re-keys exactly the results that depend on it, and leaves the others cached.

`UNHASHED_MODULES` compute nothing that a result holds: where results are stored and under which
name (`fmlib.paths`, this module), which jobs run where (`fmlib.executors`, `fmlib.runner`,
`fmlib.provenance`, `fmlib.cli`), the assay of a user's model, the profiles and parameters, whose
values enter each key themselves, and the package's own ``__init__.py``, which holds the version and
the top-level names of the user's entry points (``fmlib.advise``): code whose result is cached imports
what it runs from the module that defines it. They are neither hashed nor followed.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

PACKAGE = Path(__file__).resolve().parent

UNHASHED_MODULES = ("__init__.py", "__main__.py", "cache.py", "cli.py", "executors.py", "parameters.py", "paths.py",
                    "profiles.py", "provenance.py", "runner.py", "assay/__init__.py", "assay/adapters.py",
                    "assay/assess.py", "assay/compare.py")


def _unhashed(name: str) -> bool:
    return name in UNHASHED_MODULES


def _module_file(package: Path, dotted: list[str]) -> str | None:
    """``fmlib.a.b`` (as ``["a", "b"]``) as a path relative to `package`, or None if it is no module."""
    base = package.joinpath(*dotted)
    if base.with_suffix(".py").is_file():
        return str(base.with_suffix(".py").relative_to(package))
    if (base / "__init__.py").is_file():
        return str((base / "__init__.py").relative_to(package))
    return None


def _imports(tree: ast.AST, package: Path, current: Iterable[str]) -> tuple[set[str], set[str]]:
    """The ``fmlib`` modules that the statements of `tree` import, as (targets, packages on the way):
    ``from .a.b import f`` targets ``a/b.py`` and passes ``a/__init__.py`` on the way."""
    current = list(current)
    targets: list[list[str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets += [alias.name.split(".")[1:] for alias in node.names if alias.name.split(".")[0] == "fmlib"]
        elif isinstance(node, ast.ImportFrom):
            module = (node.module or "").split(".")
            if node.level:  # ``from .x import y`` in package `current`; each further dot goes one up
                base = current[: len(current) - (node.level - 1)] + [m for m in module if m]
            elif module[0] == "fmlib":
                base = module[1:]
            else:
                continue
            targets.append(base)
            # ``from fmlib import realdata`` imports a module; ``from fmlib.x import name`` an attribute.
            targets += [base + [alias.name] for alias in node.names]
    found, passed = set(), set()
    for dotted in targets:
        dotted = [part for part in dotted if part]
        for depth in range(len(dotted) + 1):  # the packages on the way are imported too
            name = _module_file(package, dotted[:depth])
            if name is not None:
                (found if depth == len(dotted) else passed).add(name)
    return found, passed - found


def imported_modules(tree: ast.AST, package: Path = PACKAGE, current: Iterable[str] = ()) -> set[str]:
    """The ``fmlib`` modules that the statements of `tree` import, anywhere (function-local imports
    too), with the ``__init__.py`` of every package on the way, as paths relative to `package`.
    `current` is the dotted package of the module `tree` comes from, for relative imports."""
    found, passed = _imports(tree, package, current)
    return found | passed


def _stamp(path: Path) -> tuple:
    stat = path.stat()
    return str(path), stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=1024)
def _module_imports(package: Path, name: str, stamp: tuple) -> tuple[frozenset[str], frozenset[str]]:
    """`_imports` of one module file, parsed once per version of the file (`stamp`)."""
    current = name.split("/")[:-1]  # the package the module is in (for __init__.py: the package itself)
    found, passed = _imports(ast.parse((package / name).read_text()), package, current)
    return frozenset(found), frozenset(passed)


@functools.lru_cache(maxsize=1024)
def _file_digest(stamp: tuple) -> str:
    return hashlib.sha256(Path(stamp[0]).read_bytes()).hexdigest()


def module_closure(modules: Iterable[str], package: Path = PACKAGE) -> list[str]:
    """`modules` (paths relative to the package, such as ``"synthesis/optics.py"``) and every
    ``fmlib`` module they import in turn, sorted; `UNHASHED_MODULES` are neither listed nor followed.

    A package's ``__init__.py`` passed on the way to one of its modules (``from .attacks.gradient
    import PGD``) is listed but its own imports are not followed: the modules it re-exports run only
    for whoever imports them (no ``fmlib`` module acts at import time), so a change to the attack
    ensemble does not re-key a trained model that uses PGD alone. An ``__init__.py`` that is itself
    imported from (``from .attacks import PGD``) is followed, as any module."""
    package = Path(package).resolve()
    pending = {m for m in modules if not _unhashed(m)}
    followed: set[str] = set()
    passed: set[str] = set()
    while pending:
        name = pending.pop()
        followed.add(name)
        found, on_the_way = _module_imports(package, name, _stamp(package / name))
        pending |= {m for m in found if m not in followed and not _unhashed(m)}
        passed |= {m for m in on_the_way if not _unhashed(m)}
    return sorted(followed | passed)


def code_hash(modules: Iterable[str], package: Path = PACKAGE) -> str:
    """Hash of the modules `modules` (relative paths), by path and content; no closure is taken."""
    package = Path(package).resolve()
    digest = hashlib.sha256()
    for name in sorted(set(modules)):
        digest.update(name.encode())
        digest.update(_file_digest(_stamp(package / name)).encode())
    return digest.hexdigest()


def content_key(payload: object, modules: Iterable[str], *, length: int = 24, package: Path = PACKAGE) -> str:
    """The cache key of a result: a hash of `payload` (JSON-serialisable parameters) and of the code
    of `module_closure(modules)`, `length` hex digits.

    Examples
    --------
    >>> a = content_key({"seed": 0}, ["metrics.py"])
    >>> a == content_key({"seed": 0}, ["metrics.py"]) != content_key({"seed": 1}, ["metrics.py"])
    True
    """
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode())
    digest.update(code_hash(module_closure(modules, package), package).encode())
    return digest.hexdigest()[:length]


def array_digest(*arrays) -> str:
    """SHA-256 of `arrays`, each by its shape, dtype and bytes: the name in a key or memo of data that
    has no other (real tiles, a user's frames).

    Examples
    --------
    >>> a = array_digest(np.zeros(2), np.ones(1))
    >>> a == array_digest(np.zeros(2), np.ones(1)) != array_digest(np.zeros(2, np.float32), np.ones(1))
    True
    """
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(repr((array.shape, array.dtype.str)).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(scratch)`` on a temporary file beside `path`, then rename it to `path`: a reader
    (or a worker lost mid-write) never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(scratch)
    os.replace(scratch, path)
    return path

import pytest

from fmlib import cache, paths


def test_a_training_key_covers_every_module_a_trained_model_depends_on():
    modules = cache.module_closure(["checkpoints.py"])
    for needed in ("training.py", "attacks/base.py", "inference.py", "metrics.py", "models/unet.py",
                   "synthesis/structures.py", "_checks.py"):
        assert needed in modules, needed
    # what only decides where and under which name results are stored is not part of a result
    assert not set(modules) & set(cache.UNHASHED_MODULES)
    # the package's __init__.py holds the version and the user's entry points: no input of a result
    assert "__init__.py" not in modules and "advice/core.py" not in modules
    assert "corruptions/__init__.py" not in modules and "realdata.py" not in modules
    # training uses PGD alone: the ensemble that attacks/__init__.py re-exports is no input of a model
    assert "attacks/gradient.py" in modules and "attacks/__init__.py" in modules
    assert "attacks/ensemble.py" not in modules and "attacks/apgd.py" not in modules


def test_an_evaluation_key_covers_the_metrics_corruptions_and_attacks():
    modules = cache.module_closure(["grid/eval_grid.py"])
    needed = {"grid/train_grid.py", "metrics.py", "attacks/apgd.py", "evaluation.py", "corruptions/__init__.py",
              "checkpoints.py"}
    assert needed <= set(modules)
    assert "profiles.py" not in modules  # its values enter each key as parameters


def _package(tmp_path):
    package = tmp_path / "fmlib"
    package.mkdir()
    for name, text in {"__init__.py": "", "a.py": "from .b import f\n", "b.py": "f = 1\n", "c.py": "g = 2\n",
                       "paths.py": "from .c import g\n"}.items():
        (package / name).write_text(text)
    return package


def test_the_content_key_follows_the_payload_and_the_code_it_runs(tmp_path):
    package = _package(tmp_path)
    key = cache.content_key({"seed": 0}, ["a.py"], package=package)
    assert cache.content_key({"seed": 0}, ["a.py"], package=package) == key
    assert cache.content_key({"seed": 1}, ["a.py"], package=package) != key
    (package / "c.py").write_text("g = 3\n")  # not imported by a.py (paths.py imports it, but is unhashed)
    assert cache.content_key({"seed": 0}, ["a.py"], package=package) == key
    (package / "b.py").write_text("f = 22\n")  # imported by a.py: a result of a.py may change
    assert cache.content_key({"seed": 0}, ["a.py"], package=package) != key


def test_write_atomic_leaves_no_scratch_file(tmp_path):
    target = tmp_path / "sub" / "table.csv"
    cache.write_atomic(target, lambda scratch: scratch.write_text("a,b\n1,2\n"))
    assert target.read_text() == "a,b\n1,2\n" and [p.name for p in target.parent.iterdir()] == ["table.csv"]
    with pytest.raises(RuntimeError):
        cache.write_atomic(target, lambda scratch: (_ for _ in ()).throw(RuntimeError("disk full")))
    assert target.read_text() == "a,b\n1,2\n"  # a failed write leaves the previous file


def test_paths_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FMROBUST_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("FMROBUST_DATA", str(tmp_path / "d"))
    assert paths.cache_dir() == tmp_path / "c" and paths.data_dir() == tmp_path / "d"
    monkeypatch.delenv("FMROBUST_ROOT", raising=False)
    with pytest.raises(paths.RootNotFoundError, match="FMROBUST_ROOT"):
        paths.find_root(tmp_path)


def test_a_package_passed_on_the_way_is_hashed_but_its_re_exports_are_not_followed(tmp_path):
    package = _package(tmp_path)
    (package / "p").mkdir()
    for name, text in {"__init__.py": "from .x import h\nfrom .y import k\n", "x.py": "h = 1\n",
                       "y.py": "k = 2\n"}.items():
        (package / "p" / name).write_text(text)
    (package / "deep.py").write_text("from .p.y import k\n")  # y's module itself
    (package / "flat.py").write_text("from .p import k\n")  # whatever p/__init__.py exports
    assert cache.module_closure(["deep.py"], package) == ["deep.py", "p/__init__.py", "p/y.py"]  # root: unhashed
    assert "p/x.py" in cache.module_closure(["flat.py"], package)
    key = cache.content_key({}, ["deep.py"], package=package)
    (package / "p" / "x.py").write_text("h = 11\n")  # re-exported by p, not run by deep.py
    assert cache.content_key({}, ["deep.py"], package=package) == key
    (package / "p" / "__init__.py").write_text("from .y import k\n")  # the package itself changed
    assert cache.content_key({}, ["deep.py"], package=package) != key


def test_array_digest_names_data_by_shape_dtype_and_bytes():
    import numpy as np

    a = np.arange(6, dtype=np.float32)
    assert cache.array_digest(a) == cache.array_digest(a.copy()) == cache.array_digest(a[::-1][::-1])
    others = [a.reshape(2, 3), a.astype(np.float64), a[::-1], np.arange(5, dtype=np.float32)]
    assert len({cache.array_digest(a), *(cache.array_digest(o) for o in others)}) == 1 + len(others)
    assert cache.array_digest(a[:3], a[3:]) != cache.array_digest(a)  # each array apart

import json
import os
from pathlib import Path

import nbformat
import papermill
import pytest

from fmlib import cache, cli, runner
from fmlib.profiles import resolve


@pytest.fixture
def mini_study(tmp_path, monkeypatch):
    """A study folder with one notebook, named like the first real one, that runs `body`."""
    monkeypatch.setattr(runner, "NOTEBOOKS", runner.NOTEBOOKS[:1])
    return lambda body: _mini_study(tmp_path, body)


def _mini_study(tmp_path: Path, body: str) -> Path:
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("profile = 'smoke'\nseed = 0", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("x = seed + 1"),
                nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "notebooks" / f"{runner.NOTEBOOKS[0]}.ipynb")
    return tmp_path


def test_run_caches_and_records_a_manifest(mini_study):
    root = mini_study("print('seed is', seed)")
    manifest = runner.run("smoke", root=root, only=[runner.NOTEBOOKS[0]], progress=False)
    target = root / "book" / "notebooks" / f"{runner.NOTEBOOKS[0]}.ipynb"
    entry = manifest["notebooks"][runner.NOTEBOOKS[0]]
    assert entry["status"] == "executed" and entry["parameters"] == {"profile": "smoke", "seed": 0}
    saved = json.loads((root / "results" / "smoke" / "manifest.json").read_text())
    assert saved["git"].keys() == {"commit", "dirty"} and saved["environment"]["packages"]["torch"]
    assert saved["notebooks"][runner.NOTEBOOKS[0]]["wall_time_s"] > 0
    assert "seed is 0" in target.read_text()
    before = target.stat().st_mtime_ns
    again = runner.run("smoke", root=root, only=[runner.NOTEBOOKS[0]], progress=False)
    assert again["notebooks"][runner.NOTEBOOKS[0]]["status"] == "cached"
    assert target.stat().st_mtime_ns == before
    changed = runner.run("smoke", root=root, only=[runner.NOTEBOOKS[0]], overrides={"seed": 4}, progress=False)
    assert changed["notebooks"][runner.NOTEBOOKS[0]]["status"] == "executed"
    assert "seed is 4" in target.read_text()


def test_failing_notebook_names_cell_and_error_and_keeps_previous_output(mini_study):
    root = mini_study("raise RuntimeError('synthetic failure')")
    target = root / "book" / "notebooks" / f"{runner.NOTEBOOKS[0]}.ipynb"
    target.parent.mkdir(parents=True)
    target.write_text("previous good output")
    with pytest.raises(runner.StudyError) as info:
        runner.run("smoke", root=root, progress=False)
    message = str(info.value)
    assert runner.NOTEBOOKS[0] in message and "cell" in message and "synthetic failure" in message
    assert target.read_text() == "previous good output"
    assert (root / "results" / "smoke" / "failed" / f"{runner.NOTEBOOKS[0]}.ipynb").exists()


def test_cli_rejects_a_bad_parameter_before_running(mini_study, capsys):
    root = mini_study("pass")
    assert cli.main(["run", "--profile", "smoke", "--root", str(root), "--set", "seed=-1"]) == 1
    assert "seed" in capsys.readouterr().err
    assert not (root / "book" / "notebooks").exists()
    assert cli.main(["run", "--profile", "smoke", "--root", str(root), "--only", "99_nothing"]) == 1
    assert "only" in capsys.readouterr().err


def test_list_and_clean(mini_study, capsys):
    root = mini_study("pass")
    assert cli.main(["list", "--profile", "smoke", "--root", str(root)]) == 0
    assert "to run" in capsys.readouterr().out
    (root / "_build").mkdir()
    assert cli.main(["clean", "--root", str(root)]) == 0
    assert not (root / "_build").exists()


def _chain(tmp_path: Path, monkeypatch, bodies: dict[str, str]) -> None:
    """A study of notebooks `bodies` (name -> code), each declaring `profile`; the first also `seed`."""
    monkeypatch.setattr(runner, "NOTEBOOKS", list(bodies))
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\n")
    for i, (name, body) in enumerate(bodies.items()):
        nb = nbformat.v4.new_notebook()
        declared = "profile = 'smoke'\nseed = 0" if i == 0 else "profile = 'smoke'"
        nb.cells = [nbformat.v4.new_code_cell(declared, metadata={"tags": ["parameters"]}),
                    nbformat.v4.new_code_cell(body)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, tmp_path / "notebooks" / f"{name}.ipynb")


def test_a_change_upstream_re_executes_only_the_notebooks_that_read_it(tmp_path, monkeypatch):
    _chain(tmp_path, monkeypatch, {
        "01_first": "open('01_first_table.csv', 'w').write(f'seed\\n{seed}\\n')",
        "02_reader": "import pandas as pd\nassert len(pd.read_csv('01_first_table.csv')) == 1",
        "03_other": "x = 1"})
    assert runner.notebook_inputs(tmp_path / "notebooks" / "02_reader.ipynb") == ["01_first"]
    runner.run("smoke", root=tmp_path, progress=False)
    again = runner.run("smoke", root=tmp_path, overrides={"seed": 5}, progress=False)
    # Only the first notebook declares `seed`; the second reads its table, the third reads nothing.
    assert [again["notebooks"][n]["status"] for n in runner.NOTEBOOKS] == ["executed", "executed", "cached"]
    assert all(s["up_to_date"] for s in runner.plan("smoke", tmp_path, {"seed": 5}))


def test_a_notebook_edited_while_the_run_is_under_way_records_the_key_of_what_it_executed(tmp_path, monkeypatch):
    # The first notebook edits the second one's source while it runs, as a developer may during a
    # long run: the second must record the key of the edited source, so it is up to date afterwards.
    second = tmp_path / "notebooks" / "02_second.ipynb"
    _chain(tmp_path, monkeypatch, {
        "01_editor": f"import nbformat\nnb = nbformat.read({str(second)!r}, as_version=4)\n"
                     "nb.cells.append(nbformat.v4.new_markdown_cell('edited'))\n"
                     f"nbformat.write(nb, {str(second)!r})",
        "02_second": "y = 2"})
    manifest = runner.run("smoke", root=tmp_path, progress=False)
    assert manifest["notebooks"]["02_second"]["key"] == runner.notebook_key(
        second, {"profile": "smoke"}, threads=resolve("smoke").kernel_threads)
    assert "edited" in (tmp_path / "book" / "notebooks" / "02_second.ipynb").read_text()
    assert all(s["up_to_date"] for s in runner.plan("smoke", tmp_path))


def test_the_key_ignores_the_parameters_cell_whose_values_papermill_replaces(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("seed = 0", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print(seed)")]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    key = runner.notebook_key(path, {"seed": 1}, threads=1)
    nb.cells[0].source = "seed = 7"
    nbformat.write(nb, path)
    assert runner.notebook_key(path, {"seed": 1}, threads=1) == key
    nb.cells[1].source = "print(seed + 1)"
    nbformat.write(nb, path)
    assert runner.notebook_key(path, {"seed": 1}, threads=1) != key


def test_notebook_modules_follow_imports_through_the_package(tmp_path):
    package = tmp_path / "fmlib"
    (package / "sub").mkdir(parents=True)
    files = {"__init__.py": "", "a.py": "def f():\n    from .b import g\n    return g()\n", "b.py": "g = int\n",
             "c.py": "y = 1\n", "unused.py": "", "runner.py": "from .unused import x\n",
             "sub/__init__.py": "", "sub/d.py": "from ..c import y\nfrom fmlib import runner\n"}
    for name, text in files.items():
        (package / name).write_text(text)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%matplotlib inline\nfrom fmlib import a\nfrom fmlib.sub.d import y")]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    # runner.py is not hashed, so what only it imports is not a dependency either; nor is the root
    # __init__.py (the version and the user's entry points).
    assert runner.notebook_modules(path, package) == ["a.py", "b.py", "c.py", "sub/__init__.py", "sub/d.py"]
    before = cache.code_hash(runner.notebook_modules(path, package), package)
    (package / "unused.py").write_text("changed = True\n")
    assert cache.code_hash(runner.notebook_modules(path, package), package) == before
    (package / "b.py").write_text("g = float\n")
    assert cache.code_hash(runner.notebook_modules(path, package), package) != before


def test_the_real_notebooks_depend_on_the_modules_they_run(root):
    modules = {name: runner.notebook_modules(root / "notebooks" / f"{name}.ipynb") for name in runner.NOTEBOOKS}
    assert "realdata.py" in modules["07_real_images"] and "realdata.py" not in modules["04_corruption_robustness"]
    assert "training.py" in modules["04_corruption_robustness"] and "models/unet.py" in modules["03_training"]
    assert "recommendations.py" in modules["08_summary_recommendations"]
    assert not set(modules["03_training"]) & set(cache.UNHASHED_MODULES)
    # 06 reads the standard models' evaluations from the evaluation cache, not from 04's and 05's tables;
    # of 03 it reads the competence gate only
    assert runner.notebook_inputs(root / "notebooks" / "06_defenses.ipynb") == ["03_training"]
    assert runner.notebook_inputs(root / "notebooks" / "08_summary_recommendations.ipynb") == [
        "03_training", "04_corruption_robustness", "05_adversarial_robustness", "06_defenses", "07_real_images"]
    # the pages split from 07 read its choice of models; their own tables carry their letter
    for page in ("07b_real_objects", "07c_real_robustness"):
        assert "07_real_images" in runner.notebook_inputs(root / "notebooks" / f"{page}.ipynb")
    assert runner.notebook_inputs(root / "notebooks" / "07c_real_robustness.ipynb") == [
        "03_training", "04_corruption_robustness", "05_adversarial_robustness", "07_real_images"]


def test_a_table_with_a_lettered_number_is_read_from_its_own_page(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import pandas as pd\nt = pd.read_csv(out / '07b_real_sizes.csv')")]
    nbformat.write(nb, tmp_path / "08_reader.ipynb")
    assert runner.notebook_inputs(tmp_path / "08_reader.ipynb") == ["07b_real_objects"]


def test_the_assay_notebook_is_a_clean_parameterized_notebook(root):
    nb = nbformat.read(root / "notebooks" / "09_assess_your_model.ipynb", as_version=4)
    assert "google.colab" in nb.cells[1].source
    params = papermill.inspect_notebook(str(root / "notebooks" / "09_assess_your_model.ipynb"))
    assert {"model_path", "factory", "weights", "structure", "profile", "output", "in_channels"} <= set(params)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert "09_assess_your_model" not in runner.NOTEBOOKS  # a tool, not a step of the study


def test_the_committed_standard_book_is_up_to_date_with_the_code(root):
    # The committed book's numbers must come from this code: a change to a module, a notebook or a
    # parameter that a standard notebook uses re-keys it, and it must be re-executed before it lands.
    stale = [s["name"] for s in runner.plan("standard", root) if not s["up_to_date"]]
    assert not stale, (f"book/notebooks/{stale[0]}.ipynb was executed with other code or parameters; run "
                       f"`fmrobust run --profile standard` and commit book/notebooks/ and results/standard/")


def _standard_training_tables(root):
    import pandas as pd

    runs = pd.read_csv(root / "results" / "standard" / "03_training.csv")
    gate = pd.read_csv(root / "results" / "standard" / "03_competence.csv")
    return runs, gate


def test_the_committed_standard_run_meets_the_median_and_convergence_targets_of_issue_38(root):
    """Issue #38's targets, on the committed training tables: the median clean IoU of the ten
    architectures per structure (standard training, on the gate's scenes), 90 % of runs converged,
    and both the paper's protocol and randomized acquisitions among the regimes."""
    runs, gate = _standard_training_tables(root)
    assert {"standard", "randomized"} <= set(runs.regime) and runs.model.nunique() == 10
    standard = runs[runs.regime == "standard"]
    medians = standard.groupby(["structure", "model"]).gate_iou.mean().groupby("structure").median()
    targets = {"nuclei": 0.90, "mitochondria": 0.85, "er": 0.80}
    assert all(medians[s] >= t for s, t in targets.items()), medians.to_dict()
    assert runs.converged.mean() >= 0.90
    assert gate.competent.dtype == bool and gate.stride_limited.dtype == bool


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="issue #38, open: two pairs that their stride allows "
                   "stay under the floor on the gate's 128 scenes (PSPNet 0.688, ICNet 0.661 on mitochondria); the "
                   "target is at most one")
def test_the_committed_standard_run_has_at_most_one_pair_under_the_floor_that_its_stride_allows(root):
    """Issue #38: at most one architecture x structure of standard training not competent, not counting
    the pairs whose output stride cannot draw the structure."""
    _, gate = _standard_training_tables(root)
    failed = gate[(gate.regime == "standard") & ~gate.competent & ~gate.stride_limited]
    assert len(failed) <= 1, failed[["model", "structure", "reason"]].to_dict("records")


def test_notebook_kernels_run_torch_on_the_profiles_thread_count_which_enters_the_key(mini_study, monkeypatch):
    """Results that training or attacks compute inside a notebook depend on the thread count: it is a
    profile parameter, and a notebook executed on another count is not up to date."""
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    root = mini_study("import torch\nprint('threads', torch.get_num_threads())")
    name = runner.NOTEBOOKS[0]
    # (torch takes at most one thread per core: 1 differs from the default on any machine with two)
    runner.run("smoke", root=root, only=[name], progress=False, overrides={"kernel_threads": 1})
    executed = json.loads((root / "book" / "notebooks" / f"{name}.ipynb").read_text())
    assert "threads 1\\n" in json.dumps(executed["cells"]) and executed["metadata"]["fmrobust"]["kernel_threads"] == 1
    assert os.environ["OMP_NUM_THREADS"] == "7"  # the runner's own environment is left as it was
    assert runner.plan("smoke", root, {"kernel_threads": 1})[0]["up_to_date"]
    assert not runner.plan("smoke", root, {"kernel_threads": 2})[0]["up_to_date"]
    assert resolve("smoke").kernel_threads == 2 and resolve("standard").kernel_threads == 1

"""End to end: the whole study at the smoke profile through the runner, then the book, offline."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from myst_nb.core.variables import format_plain_text

from fmlib import runner

COPY = ["notebooks", "data", "_config.yml", "_toc.yml", "references.bib"]
GLUE_ROLE = re.compile(r"\{glue:text\}`(?:(?P<doc>[^`:]+)::)?(?P<key>\w+)(?::(?P<fmt>[^`]*))?`")


def _toc_files(root: Path) -> list[str]:
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


@pytest.fixture(scope="module")
def built_book(tmp_path_factory, root=Path(__file__).resolve().parents[1]):
    site = tmp_path_factory.mktemp("site")
    for name in COPY:
        source = root / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, site / name)
    (site / "book").mkdir()
    for page in (root / "book").glob("*.md"):
        shutil.copy(page, site / "book" / page.name)
    manifest = runner.run("smoke", root=site, progress=False)
    jb = Path(sys.executable).with_name("jupyter-book")
    build = subprocess.run([str(jb), "build", str(site), "--path-output", str(site), "-W", "-n", "--keep-going"],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    return site, manifest


def _glued_values(executed: Path) -> dict[str, str]:
    nb = nbformat.read(executed, as_version=4)
    values = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            record = output.get("metadata", {}).get("scrapbook", {})
            plain = output.get("data", {}).get(record.get("mime_prefix", "") + "text/plain")
            if record.get("name") and plain is not None:
                values[record["name"]] = plain
    return values


def test_every_toc_page_is_built(built_book):
    site, _ = built_book
    for page in _toc_files(site):
        assert (site / "_build" / "html" / f"{page}.html").exists(), page


def test_notebook_pages_show_their_figures(built_book):
    site, _ = built_book
    for name in runner.NOTEBOOKS:
        html = (site / "_build" / "html" / "book" / "notebooks" / f"{name}.html").read_text()
        images = [src for src in re.findall(r'<img[^>]+src="([^"]+\.png)"', html) if "_images/" in src]
        expected = (site / "book" / "notebooks" / f"{name}.ipynb").read_text().count("{glue:figure}")
        assert expected >= 1 and len(images) >= expected, f"{name}: {expected} figures expected, found {images}"
        page_dir = site / "_build" / "html" / "book" / "notebooks"
        assert all((page_dir / src).resolve().exists() for src in images)


HIDDEN = {"hide-input", "hide-cell", "remove-input", "remove-cell"}
TEACHING = "# The API in use:"  # the first line of a code cell that teaches a call, shown on the page


@pytest.mark.parametrize("source", sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb")),
                         ids=lambda p: p.stem)
def test_every_code_cell_is_behind_a_toggle_but_the_parameters_and_the_api_examples(source):
    for cell in nbformat.read(source, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        tags = set(cell.metadata.get("tags", []))
        shown = "parameters" in tags or cell.source.startswith(TEACHING)
        assert shown != bool(tags & HIDDEN), f"{source.name}, cell {cell.get('id')}: tags {sorted(tags)}"


def test_notebook_pages_put_their_code_behind_toggles(built_book):
    site, _ = built_book
    for name in runner.NOTEBOOKS:
        nb = nbformat.read(site / "book" / "notebooks" / f"{name}.ipynb", as_version=4)
        hidden = sum("hide-input" in c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code")
        html = (site / "_build" / "html" / "book" / "notebooks" / f"{name}.html").read_text()
        assert hidden and html.count("above-input") >= hidden, name  # myst-nb's "show code cell source" toggle


def test_glued_numbers_appear_in_the_text(built_book):
    site, _ = built_book
    pages = [site / "book" / f"{p.split('/')[-1]}.md" for p in _toc_files(site) if not p.startswith("book/notebooks")]
    pages += [site / "book" / "notebooks" / f"{n}.ipynb" for n in runner.NOTEBOOKS]
    checked = 0
    for page in pages:
        text = page.read_text()
        html = (site / "_build" / "html" / page.relative_to(site).with_suffix(".html")).read_text()
        for match in GLUE_ROLE.finditer(text):
            doc = match["doc"] or "/" + str(page.relative_to(site))
            value = _glued_values(site / doc.lstrip("/"))[match["key"]]
            expected = format_plain_text(value, match["fmt"] or "")  # exactly as myst-nb formats it
            assert expected in html, f"{page.name}: glued {match['key']} = {expected} not in the page"
            checked += 1
    assert checked >= 5


def test_a_second_run_executes_nothing(built_book):
    site, _ = built_book
    again = runner.run("smoke", root=site, progress=False)
    assert {entry["status"] for entry in again["notebooks"].values()} == {"cached"}


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless chromium is not installed")
def test_headless_chromium_renders_the_book_with_navigation(built_book, tmp_path):
    site, _ = built_book
    html = site / "_build" / "html"
    assert "book/intro.html" in (html / "index.html").read_text()  # index is a redirect
    intro = (html / "book" / "intro.html").read_text()
    assert "bd-sidebar" in intro and "01_synthesis.html" in intro  # the navigation lists the pages
    shot = tmp_path / "intro.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path}/u",
                    "--virtual-time-budget=3000", "--window-size=1280,1000", f"--screenshot={shot}",
                    (html / "book" / "intro.html").as_uri()], capture_output=True, timeout=120)
    from skimage.io import imread

    pixels = imread(shot)
    assert pixels.shape[:2] == (1000, 1280) and pixels.std() > 10  # not a blank page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless chromium is not installed")
def test_recommendations_page_renders_with_its_glued_verdicts(built_book, tmp_path):
    site, _ = built_book
    page = site / "_build" / "html" / "book" / "recommendations.html"
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run",
                          f"--user-data-dir={tmp_path}/u", "--virtual-time-budget=3000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    values = _glued_values(site / "book" / "notebooks" / "08_summary_recommendations.ipynb")
    verdicts = [format_plain_text(v, "s") for k, v in values.items() if k.startswith("verdict_")]
    assert len(verdicts) >= 7
    text = re.sub(r"<[^>]+>", "", dom)
    assert "Recommendations" in text
    assert all(verdict in text for verdict in verdicts)


def test_assess_cli_reports_a_torchscript_model_among_the_references(built_book, tmp_path):
    """`fmrobust assess` on a small U-Net exported with TorchScript, against the smoke study's models."""
    import torch

    from fmlib import cli
    from fmlib.models import create_model

    site, _ = built_book
    torch.manual_seed(0)
    path = tmp_path / "lab_unet.pt"
    torch.jit.trace(create_model("sim_unet").eval(), torch.rand(1, 1, 64, 64)).save(str(path))
    out = tmp_path / "report"
    assert cli.main(["assess", "--model", str(path), "--structure", "nuclei", "--profile", "smoke", "--out", str(out),
                     "--name", "lab_unet", "--root", str(site)]) == 0
    html = (out / "report.html").read_text()
    text = re.sub(r"<[^>]+>", " ", html)
    assert re.search(r"lab_unet ranks \d+ of 3 for corrupted IoU", text)
    assert "clean IoU" in text and "corruption robustness" in text and "<img" in html
    assert "Traceback" not in text and "assay of lab_unet" not in text  # no progress bars or errors
    assert cli.main(["assess", "--model", str(tmp_path / "nope.pt"), "--structure", "nuclei", "--profile", "smoke",
                     "--out", str(out), "--root", str(site)]) == 1


def test_advise_cli_on_a_real_image_writes_its_report_json_and_torchscript(built_book, tmp_path, monkeypatch):
    """`fmrobust advise` on the DSB image, against the smoke study's models, end to end."""
    import json
    from html import escape

    import numpy as np
    import pandas as pd
    import tifffile
    import torch

    from fmlib import cli, runs
    from fmlib.inference import predict
    from fmlib.profiles import resolve

    site, _ = built_book
    image = Path(__file__).resolve().parents[1] / "data" / "real" / "dsb2018" / "img2d.tif"
    out = tmp_path / "advice"
    # on the thread count of notebook 10's kernel, so that the two advices can be compared below
    threads = torch.get_num_threads()
    torch.set_num_threads(resolve("smoke").kernel_threads)
    try:
        assert cli.main(["advise", str(image), "--structure", "nuclei", "--profile", "smoke", "--out", str(out),
                         "--root", str(site)]) == 0
    finally:
        torch.set_num_threads(threads)
    advice = json.loads((out / "advice.json").read_text())
    assert advice["refusal"] == "" and advice["recommendation"]["model"] in ("sim_unet", "unet3")
    assert {row["regime"] for row in advice["ranking"]} == {"standard", "randomized", "noise", "adversarial"}
    assert all(row["low"] <= row["score"] <= row["high"] for row in advice["ranking"])
    html = (out / "report.html").read_text()
    assert escape(advice["answer"].split(":")[0]) in html and html.count("<img") >= 2 and "Traceback" not in html
    # The exported model segments the user's image at once, as the study's model does.
    scripted = torch.jit.load(str(out / "model.pt")).eval()
    crop = tifffile.imread(image).astype(np.float32)[:256, :256]
    with torch.no_grad():
        mask = (scripted(torch.from_numpy(crop)[None, None])[0, 0] > 0).numpy()
    assert 0.05 < mask.mean() < 0.8
    # Same parameters, same answer: notebook 10 advised on the same image in its own kernel.
    example = pd.read_csv(site / "results" / "smoke" / "10_advice_example.csv")
    ranked = pd.DataFrame(advice["ranking"])
    assert ranked[["model", "regime"]].equals(example[["model", "regime"]])
    assert np.allclose(ranked.score, example.score, atol=1e-6)
    attacked = pd.read_csv(site / "results" / "smoke" / "10_advice_example_attacks.csv")  # the leader, first
    assert advice["recommendation"]["seed"] == attacked.seed.iloc[0]
    monkeypatch.setenv("FMROBUST_ROOT", str(site))
    r = advice["recommendation"]
    study_model = runs.model_loader(resolve("smoke"), "nuclei")(r["model"], r["regime"], r["seed"])
    assert np.array_equal(predict(study_model, crop[None])[0], mask)
    (tmp_path / "notes.txt").write_text("not an image")
    assert cli.main(["advise", str(tmp_path / "notes.txt"), "--structure", "nuclei", "--profile", "smoke",
                     "--out", str(out), "--root", str(site)]) == 1


def test_advise_refuses_transmitted_light_and_recommends_nothing(built_book, monkeypatch):
    from fmlib.advice import advise, recommended_model, validation

    site, _ = built_book
    monkeypatch.setenv("FMROBUST_ROOT", str(site))
    advice = advise(validation.negative_frames()[:4], "nuclei", profile="smoke", n_images=2, progress=False)
    assert advice.recommendation is None and "cannot imitate" in advice.refusal
    assert advice.answer.startswith("No recommendation") and not advice.realism.within.all()
    with pytest.raises(ValueError, match="advice: nothing was recommended"):
        recommended_model(advice)


def test_the_realism_thresholds_accept_every_fluorescence_set_and_refuse_transmitted_light(built_book):
    """Notebook 10's basis of the thresholds, at the smoke profile's seed: the rule holds and the
    transmitted-light channel is refused."""
    import pandas as pd

    from fmlib.advice import THRESHOLDS, validation

    site, _ = built_book
    basis = pd.read_csv(site / "results" / "smoke" / "10_threshold_basis.csv")
    assert set(basis.kind) == {"real", "simulated", "negative"}
    limit = basis.key.map(THRESHOLDS)
    fluorescent = basis.fluorescence.astype(bool)
    assert (basis.distance[fluorescent] <= limit[fluorescent]).all(), basis[fluorescent]
    derived = validation.derived_thresholds(basis)
    assert all(derived[k] <= THRESHOLDS[k] * 1.05 for k in THRESHOLDS), derived
    assert (basis.distance[~fluorescent] > limit[~fluorescent]).any(), basis[~fluorescent]
    checks = pd.read_csv(site / "results" / "smoke" / "10_validation.csv")
    assert set(checks.source) == set(validation.SOURCES) and checks.n.ge(3).all()


import nbformat
import papermill
import pytest
import yaml

from fmlib import profiles, runner


def test_resolve_validates_every_parameter():
    cfg = profiles.resolve("smoke", seed=3)
    assert cfg.seed == 3 and cfg.profile == "smoke"
    for profile in profiles.PROFILE_NAMES:
        profiles.resolve(profile)  # every profile is valid as written
    with pytest.raises(ValueError, match="n_images_snr"):
        profiles.resolve("smoke", n_images_snr=-1)
    with pytest.raises(ValueError, match=r"structures\[0\].*'golgi'"):
        profiles.resolve("smoke", structures=["golgi"])
    with pytest.raises(ValueError, match="image_size.*multiple of 32"):
        profiles.resolve("smoke", image_size=100)
    with pytest.raises(ValueError, match="profile"):
        profiles.resolve("huge")
    with pytest.raises(ValueError, match=r"corruptions\[1\].*'fog'"):
        profiles.resolve("smoke", corruptions=["defocus", "fog"])
    with pytest.raises(ValueError, match="learning_rat"):
        profiles.resolve("smoke", learning_rat=0.1)
    with pytest.raises(ValueError, match="ensemble_max_steps.*ensemble_steps=5"):
        profiles.resolve("smoke", ensemble_max_steps=4)  # the cap must allow the first run


def test_profiles_declare_the_same_parameters():
    keys = {name: set(values) for name, values in profiles.PROFILES.items()}
    assert keys["smoke"] == keys["standard"] == keys["paper"]
    assert keys["smoke"] <= set(profiles.PARAMETERS)


@pytest.mark.parametrize("name", runner.NOTEBOOKS)
def test_notebook_defaults_are_the_smoke_profile(root, name):
    params = papermill.inspect_notebook(str(root / "notebooks" / f"{name}.ipynb"))
    smoke = dict(profiles.resolve("smoke"))
    for key, info in params.items():
        assert key in smoke, f"{name}: parameter {key} is not declared in fmlib.profiles.PARAMETERS"
        assert eval(info["default"]) == smoke[key] or key == "profile"  # noqa: S307 (our own notebook)


@pytest.mark.parametrize("name", runner.NOTEBOOKS)
def test_notebook_starts_with_the_colab_cell_and_has_clean_sources(root, name):
    nb = nbformat.read(root / "notebooks" / f"{name}.ipynb", as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    colab = nb.cells[1]
    assert colab.cell_type == "code" and "google.colab" in colab.source
    url = yaml.safe_load((root / "_config.yml").read_text())["repository"]["url"]
    assert url in colab.source, "the Colab cell must clone the repository set in _config.yml"
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_the_smoke_models_are_two_different_networks():
    # unet3 at width 0.25 has sim_unet's channels at width 1.0 (16/32) and trains to the same bytes: a
    # comparison of two identical models would test nothing. The smoke pair is sim_unet at 0.5 (8/16)
    # and unet3 at 0.25, small enough for the whole smoke book in minutes.
    from fmlib.models import count_parameters, create_model

    cfg = profiles.resolve("smoke")
    sizes = {name: count_parameters(create_model(name, width=cfg.widths.get(name, 1.0))) for name in cfg.models}
    assert len(set(sizes.values())) == len(cfg.models), sizes


def test_vocabularies_come_from_their_owners():
    from fmlib.attacks import ATTACKS
    from fmlib.corruptions import list_corruptions
    from fmlib.synthesis import list_structures
    from fmlib.training import REGIMES

    standard = profiles.PROFILES["standard"]
    assert standard["structures"] == list_structures() and standard["regimes"] == list(REGIMES)
    assert standard["attacks"] == list(ATTACKS) and standard["corruptions"] == list_corruptions()


def test_results_dir_checks_the_profile(tmp_path):
    assert profiles.results_dir("smoke", tmp_path) == tmp_path / "results" / "smoke"
    with pytest.raises(ValueError, match="profile"):
        profiles.results_dir("huge", tmp_path)

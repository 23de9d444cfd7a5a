import sys

import pandas as pd
import pytest
import torch

from fmlib import assay
from fmlib.models import create_model

# A light assay: two corruptions, one attack and the ensemble at one budget (the study's smoke test set
# otherwise).
LIGHT = dict(corruptions=["defocus", "photon_noise"], attacks=["fgsm"], eps_255=[8], ensemble_eps_255=[8])


class ThreeChannel(torch.nn.Module):
    """A model that insists on three input channels and returns two softmax logits."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        if x.shape[1] != 3:
            raise RuntimeError(f"expected 3 channels, got {x.shape[1]}")
        logit = self.inner(x[:, :1])
        return torch.cat([-logit / 2, logit / 2], dim=1)


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return create_model("sim_unet").eval()


def test_adapters_recover_the_foreground_logits(unet):
    x = torch.rand(2, 1, 64, 64)
    expected = unet(x)
    adapted = assay.Adapter(ThreeChannel(unet), output="softmax2", in_channels=3)
    torch.testing.assert_close(adapted(x), expected)
    probabilities = assay.Adapter(torch.nn.Sequential(unet, torch.nn.Sigmoid()), output="probabilities")
    torch.testing.assert_close(probabilities(x), expected, atol=1e-3, rtol=1e-3)
    scaled = assay.Adapter(unet, normalization=(0.5, 0.25))
    torch.testing.assert_close(scaled(x), unet((x - 0.5) / 0.25))
    with pytest.raises(ValueError, match="output"):
        assay.Adapter(unet, output="sigmoid")
    with pytest.raises(ValueError, match="in_channels"):
        assay.Adapter(unet, in_channels=2)
    with pytest.raises(ValueError, match="std"):
        assay.Adapter(unet, normalization=(0.5, 0.0))


def test_a_wrong_output_shape_states_the_contract(unet):
    with pytest.raises(ValueError, match=r"failed on a \(2, 1, 64, 64\) batch.*3 channels.*must map float images"):
        assay.check_contract(ThreeChannel(unet), 64)
    two = assay.Adapter(ThreeChannel(unet), in_channels=3)  # softmax2 output not declared
    with pytest.raises(ValueError, match=r"returned shape \(2, 2, 64, 64\).*must map float images"):
        assay.check_contract(two, 64)
    with pytest.raises(ValueError, match="must map float images"):
        assay.assess(ThreeChannel(unet), "nuclei", "smoke", progress=False, **LIGHT)


def test_loading_errors_name_the_file_or_import_path(tmp_path, unet, monkeypatch):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        assay.load_user_model(tmp_path / "missing.pt")
    torch.save(unet.state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ValueError, match="not a TorchScript file.*factory"):
        assay.load_user_model(tmp_path / "weights.pt")
    with pytest.raises(ValueError, match="no_such_package"):
        assay.load_user_model(factory="no_such_package.models:make")
    with pytest.raises(ValueError, match="package.module:function"):
        assay.load_user_model(factory="just_a_name")
    (tmp_path / "lab_models.py").write_text("from fmlib.models import create_model\n\n"
                                            "def make():\n    return create_model('sim_unet')\n\n"
                                            "def name():\n    return 'sim_unet'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = assay.load_user_model(factory="lab_models:make", weights=tmp_path / "weights.pt")
    x = torch.rand(1, 1, 64, 64)
    torch.testing.assert_close(loaded.eval()(x), unet(x))
    with pytest.raises(ValueError, match="has no function 'build'"):
        assay.load_user_model(factory="lab_models:build")
    with pytest.raises(ValueError, match="factory: 'lab_models:name' returned a str, expected a torch.nn.Module"):
        assay.load_user_model(factory="lab_models:name")
    sys.modules.pop("lab_models", None)


def test_torchscript_model_gets_the_study_tables(tmp_path, unet):
    path = tmp_path / "unet.pt"
    torch.jit.trace(unet, torch.rand(1, 1, 64, 64)).save(str(path))  # script() cannot compile Segmenter
    result = assay.assess(assay.load_user_model(path), "nuclei", "smoke", name="mine", progress=False, **LIGHT)
    n_test, n_attacked = 4, 2  # the smoke profile's test and attacked images
    assert len(result.clean) == n_test and set(result.clean.columns) >= {"image", "iou", "dice"}
    assert len(result.corruption) == n_test * 2 * 5 and set(result.corruption.corruption) == {"defocus", "photon_noise"}
    assert len(result.adversarial) == n_attacked * 2 and set(result.adversarial.attack) == {"fgsm", "noise"}
    row = result.summary.iloc[0]
    assert row.model == "mine" and 0 <= row.clean_iou <= 1 and row.corruption_robustness >= 0
    failures = assay.worst_failures(result, 2)
    shown = assay.images_of(result, next(failures.itertuples()))
    assert shown["corrupted"].shape == shown["prediction"].shape == (64, 64)


def test_a_nuclei_model_is_also_ranked_on_the_real_images(tmp_path, unet):
    import pandas as pd

    from fmlib import realdata

    result = assay.assess(unet, "nuclei", "smoke", name="mine", progress=False, **LIGHT)
    tiles = realdata.nuclei_tiles(64)
    assert list(result.real.source.unique()) == ["dsb2018", "bbbc007_test"]
    assert len(result.real) == len(tiles["dsb2018"][0]) + len(tiles["bbbc007_test"][0])
    # A reference built from the assay itself: two copies of the model must tie on the real images.
    reference = {"clean": result.clean.assign(model="copy"), "corruption": result.corruption.assign(model="copy"),
                 "adversarial": result.adversarial.assign(model="copy"), "real": result.real.assign(model="copy")}
    table = assay.compare(result, reference, n_boot=50)
    assert set(table.real_iou.round(6)) == {round(float(result.real.iou.mean()), 6)}
    advice = assay.findings(result, table, n_boot=50)
    assert "real_iou" in set(advice.metric)
    assert assay.assess(unet, "er", "smoke", progress=False, **LIGHT).real is None
    assert pd.isna(assay.compare(result, {k: v for k, v in reference.items() if k != "real"}, n_boot=20)
                   .get("real_iou", pd.Series([float("nan")]))).all()


def test_the_assay_ranks_on_the_ensembles_robust_iou_without_the_cancelled_corruptions(unet):
    light = dict(LIGHT, corruptions=["defocus", "low_contrast"])
    result = assay.assess(unet, "er", "smoke", name="mine", progress=False, **light)
    # The ensemble holds FGSM at the same budget, so its per-image worst case is never above FGSM's.
    fgsm = result.adversarial[result.adversarial.attack == "fgsm"].set_index("image").iou
    robust = result.robust.set_index("image")
    assert set(robust.eps_255) == {8.0} and (robust.iou <= fgsm.loc[robust.index] + 1e-6).all()
    assert (robust.iou <= robust.paper_attacks_iou + 1e-6).all()
    # The z-score cancels a contrast change that clips nothing: it stays in the table and out of the corrupted IoU.
    assert result.cancelled == ["low_contrast"] and set(result.corruption.corruption) == {"defocus", "low_contrast"}
    assert set(result.acting.corruption) == {"defocus"}
    assert result.summary.corrupted_iou.iloc[0] == pytest.approx(result.acting.iou.mean())
    assert result.summary.robust_iou.iloc[0] == pytest.approx(robust.iou.mean())

    # A reference that is a copy of the model with its robust IoU halved must rank below it.
    reference = {"clean": result.clean.assign(model="copy"), "corruption": result.corruption.assign(model="copy"),
                 "adversarial": result.adversarial.assign(model="copy"),
                 "robust": result.robust.assign(model="copy", iou=result.robust.iou / 2)}
    table = assay.compare(result, reference, n_boot=50).set_index("model")
    assert table.loc["mine", "robust_iou"] == pytest.approx(robust.iou.mean())
    assert robust.iou.mean() > 0  # so that halving it ranks the copy last
    assert table.loc["mine", "robust_rank"] == 1 and table.loc["copy", "robust_rank"] == 2
    advice = assay.findings(result, table.reset_index(), n_boot=50).set_index("metric")
    assert list(advice.index[:4]) == ["clean_iou", "corrupted_iou", "attacked_iou", "robust_iou"]
    assert set(advice.loc[advice.kind != "absolute"].index) == {"corruption_robustness", "adversarial_robustness"}
    with pytest.raises(ValueError, match="eps_255"):
        assay.compare(result, {**reference, "robust": reference["robust"].assign(eps_255=32.0)}, n_boot=20)
    with pytest.raises(ValueError, match="ensemble_steps=300"):  # a stronger reference ensemble is not comparable
        assay.compare(result, {**reference, "parameters": {**result.parameters, "ensemble_steps": 300}}, n_boot=20)
    with pytest.raises(ValueError, match="other images"):
        assay.compare(result, {**reference, "robust": reference["robust"].assign(image=7)}, n_boot=20)
    # A reference model without an ensemble run stays in the table, without a robust rank.
    other = {k: pd.concat([v, v.assign(model="other")]) for k, v in reference.items() if k != "robust"}
    partial = assay.compare(result, {**other, "robust": reference["robust"]}, n_boot=20).set_index("model")
    assert "other" in partial.index and pd.isna(partial.loc["other", "robust_rank"])

    without = assay.assess(unet, "er", "smoke", name="mine", ensemble=False, progress=False, **light)
    assert without.robust is None and pd.isna(without.summary.robust_iou.iloc[0])
    assert "robust_iou" not in assay.compare(without, reference, n_boot=20)


def test_resolution_says_whether_the_output_stride_limits_the_model(unet):
    light = dict(LIGHT, corruptions=["defocus"])
    torch.manual_seed(0)
    coarse = assay.assess(create_model("pspnet", width=0.125), "er", "smoke", name="psp", progress=False, **light)
    row = assay.resolution(coarse).iloc[0]
    assert row.output_stride == 8 and row.verdict == "limiting"
    assert row["attainable_iou (bce+dice)"] < 0.95 and "stride 4 or less" in row.recommendation
    fine = assay.resolution(assay.assess(unet, "er", "smoke", progress=False, **light)).iloc[0]
    assert fine.output_stride == 1 and fine.verdict == "not limiting"
    assert fine["attainable_iou (bce+dice)"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="loss"):
        assay.resolution(coarse, loss="dice")

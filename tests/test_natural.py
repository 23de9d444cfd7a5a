import numpy as np
import pandas as pd
import pytest

from fmlib import natural
from fmlib.findings import judge


def test_the_published_table_gives_the_four_shared_architectures_with_their_provenance():
    published = natural.load_published()
    assert {"source", "dataset", "architecture", "variant", "pretraining", "metric", "value", "location"} <= set(
        published.columns)
    assert published.location.notna().all() and (published.source == "semsegbench").all()
    scores = natural.natural_scores(published)
    assert sorted(scores.model) == ["deeplabv3plus", "pspnet", "segformer", "unet"]
    assert scores.set_index("model").loc["unet", "clean"] == pytest.approx(0.691)
    assert ((scores.retention > 0) & (scores.retention < 1)).all()
    # a published mean lies between its two parts
    assert ((scores.corrupted - scores[["corrupted_noise", "corrupted_other"]].min(axis=1)) > -1e-9).all()


def test_a_variant_without_every_metric_is_refused_by_name():
    published = natural.load_published()
    with pytest.raises(ValueError, match="deeplabv3plus .*lacks"):
        natural.natural_scores(published, variants={"deeplabv3plus": "ResNet-18-D8 (ResNet-V1c); train crop 512x1024"})
    with pytest.raises(ValueError, match="dataset: no variants"):
        natural.natural_scores(published, dataset="ade20k")


def _corruption_table():
    rows = []
    for m, (clean, hit) in {"unet": (0.9, 0.1), "pspnet": (0.8, 0.3), "segformer": (0.85, 0.2),
                            "deeplabv3plus": (0.7, 0.05)}.items():
        for image in range(2):
            for corruption, family, drop in (("photon_noise", "noise", hit), ("defocus", "optics", 0.1),
                                             ("brightness", "illumination", 0.0)):
                rows.append({"model": m, "structure": "nuclei", "regime": "standard", "seed": 0, "image": image,
                             "corruption": corruption, "family": family, "severity": 3, "iou": clean - drop,
                             "clean_iou": clean})
    return pd.DataFrame(rows)


def test_fm_scores_leave_out_a_cancelled_corruption_and_set_the_noise_family_apart():
    fm = natural.fm_scores(_corruption_table()).set_index("model")
    # brightness changes nothing (cancelled): the mean is over photon noise and defocus only
    assert fm.loc["unet", "corrupted"] == pytest.approx(0.9 - (0.1 + 0.1) / 2)
    assert fm.loc["pspnet", "corrupted_noise"] == pytest.approx(0.5)
    assert fm.loc["pspnet", "retention_noise"] == pytest.approx(0.5 / 0.8)
    with pytest.raises(ValueError, match="corruption: no rows"):
        natural.fm_scores(_corruption_table(), severity=5)


def test_exact_spearman_enumerates_every_pairing():
    rho, p = natural.exact_spearman([1, 2, 3, 4], [40, 30, 20, 10])
    assert rho == pytest.approx(-1.0) and p == pytest.approx(2 / 24)
    rho, p = natural.exact_spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])
    assert rho == pytest.approx(0.8) and 0 < p < 1
    with pytest.raises(ValueError, match="x, y"):
        natural.exact_spearman([1, 2], [1, 2])


def test_four_architectures_cannot_test_the_claim_whatever_they_show():
    published = natural.load_published()
    agreement = natural.rank_agreement(natural.natural_scores(published), natural.fm_scores(_corruption_table()))
    assert set(agreement.score) == set(natural.SCORES) and (agreement.n_models == 4).all()
    assert np.allclose(agreement.p_min, 2 / 24)
    judged = judge([natural.finding(agreement), natural.finding(agreement, score="retention")])
    assert [f.verdict for f in judged] == ["not testable here"] * 2 and judged[0].claimed_sign == -1
    assert [f.family for f in judged] == ["primary", "secondary"] and judged[1].key == "natural_vs_fm_ratio"
    assert np.isfinite(judged[0].estimate)  # the comparison is still reported
    with pytest.raises(ValueError, match="score"):
        natural.finding(agreement, score="clean")


def test_profiles_without_shared_architectures_report_nothing_to_compare():
    published = natural.load_published()
    fm = natural.fm_scores(_corruption_table().replace({"model": {"unet": "sim_unet", "pspnet": "unet3"}}))
    fm = fm[fm.model.isin(["sim_unet", "unet3"])]
    agreement = natural.rank_agreement(natural.natural_scores(published), fm)
    assert (agreement.n_models == 0).all() and agreement.rho.isna().all()
    judged = judge([natural.finding(agreement)])[0]
    assert judged.verdict == "not testable here"

"""fmlib.advice: the user's images read and refused clearly, the matched conditions, the ranking and
its CIs, the realism check and its thresholds, the validation table. The end-to-end advice against
the smoke study's models runs in tests/test_book.py."""

import numpy as np
import pandas as pd
import pytest
import tifffile
from _models import threshold_segmenter

from fmlib import acquisition
from fmlib.advice import THRESHOLDS, read_images
from fmlib.advice import ranking as rk
from fmlib.advice import realism_check as rc
from fmlib.advice import validation as val
from fmlib.profiles import resolve
from fmlib.synthesis import make_dataset


@pytest.fixture(scope="module")
def raw():
    return make_dataset("nuclei", 3, 128, snr=6, seed=3).raw


# --- inputs -------------------------------------------------------------------------------------

def test_a_stack_counts_as_frames_and_a_folder_as_its_files(tmp_path, raw):
    tifffile.imwrite(tmp_path / "a.tif", raw[0])
    tifffile.imwrite(tmp_path / "b.tiff", raw[1:])
    (tmp_path / "notes.txt").write_text("not an image")
    frames, names = read_images(tmp_path)
    assert len(frames) == 3 and names[0].endswith("a.tif") and names[1].endswith("b.tiff[0]")
    assert frames[0].dtype == np.float64 and np.array_equal(frames[0], raw[0])  # counts kept, not rescaled


def test_a_multichannel_stack_needs_a_channel(tmp_path, raw):
    stack = np.stack([raw[:2], raw[:2] // 2], axis=1)  # (T, C, H, W), ImageJ's order
    tifffile.imwrite(tmp_path / "two.tif", stack, metadata={"axes": "TCYX"}, imagej=True)
    with pytest.raises(ValueError, match=r"channel.*--channel"):
        read_images(tmp_path / "two.tif")
    frames, _ = read_images(tmp_path / "two.tif", channel=1)
    assert len(frames) == 2 and np.array_equal(frames[0], raw[0] // 2)
    with pytest.raises(ValueError, match="channel: 5"):
        read_images(tmp_path / "two.tif", channel=5)


@pytest.mark.parametrize("case, match", [
    ("empty", "holds no TIFF"), ("text", "not a TIFF"), ("garbage", "cannot be read"), ("rgb", "RGB"),
    ("nan", "NaN"), ("small", "at least 64 x 64"), ("constant", "constant"), ("missing", "no such file"),
    ("list", "item 0 is a int"), ("nothing", "no image given"),
])
def test_bad_input_names_the_argument(tmp_path, raw, case, match):
    image = raw[0].astype(np.float64)
    if case == "empty":
        (tmp_path / "empty").mkdir()
        arg = tmp_path / "empty"
    elif case == "text":
        arg = tmp_path / "x.txt"
        arg.write_text("hello")
    elif case == "garbage":
        arg = tmp_path / "x.tif"
        arg.write_bytes(b"not a tiff at all")
    elif case == "rgb":
        arg = tmp_path / "rgb.tif"
        tifffile.imwrite(arg, np.zeros((64, 64, 3), np.uint8) + np.arange(3, dtype=np.uint8), photometric="rgb")
    elif case == "nan":
        image[3, 3] = np.nan
        arg = image
    elif case == "small":
        arg = image[:40, :40]
    elif case == "constant":
        arg = np.full((64, 64), 7.0)
    elif case == "missing":
        arg = tmp_path / "nope.tif"
    elif case == "list":
        arg = [3]
    else:
        arg = []
    with pytest.raises((ValueError, FileNotFoundError), match=match) as error:
        read_images(arg)
    assert str(error.value).startswith(("images:", "channel:"))


def test_advise_refuses_a_structure_outside_the_study():
    from fmlib.advice import advise
    with pytest.raises(ValueError, match="structure: expected one of"):
        advise(np.ones((64, 64)), "golgi", profile="smoke")
    with pytest.raises(ValueError, match="pixel_size_um"):
        advise(np.ones((64, 64)), "nuclei", profile="smoke", pixel_size_um=-1.0)
    with pytest.raises(ValueError, match="attack_eps_255"):  # checked before anything is computed
        advise(np.ones((64, 64)), "nuclei", profile="smoke", attack_eps_255=0)


# --- matched conditions and the ranking ---------------------------------------------------------

def test_conditions_simulate_the_estimate_and_its_degradations(raw):
    estimate = acquisition.estimate(raw, n_boot=50)
    frames = list(raw.astype(np.float64))
    sets, why = rk.conditions(estimate, "nuclei", frames, n_images=3, size=64, seed=0)
    assert list(sets)[:4] == ["as estimated", "SNR / 2", "SNR / 4", "more blur"] and set(why) == set(sets)
    snr = [np.mean([m["snr"] for m in sets[name].metadata]) for name in ("as estimated", "SNR / 2", "SNR / 4")]
    assert snr[0] > snr[1] > snr[2] and snr[0] / snr[2] == pytest.approx(4, rel=0.05)
    assert all(np.array_equal(sets[name].masks, sets["as estimated"].masks) for name in sets)  # the same scenes


def test_plausible_corruptions_follow_the_evidence(raw):
    estimate = acquisition.estimate(raw, n_boot=50)
    flat = list(raw.astype(np.float64))
    assert "saturation" not in rk.plausible_corruptions(estimate, flat)
    clipped = [np.minimum(f, np.percentile(f, 95)) for f in flat]
    assert "saturation" in rk.plausible_corruptions(estimate, clipped)
    uneven = estimate.copy()
    uneven.loc[uneven.quantity == "background_unevenness", "high"] = 2.0
    uneven.loc[uneven.quantity == "background_ratio", "estimate"] = 0.2
    assert "uneven_illumination" in rk.plausible_corruptions(uneven, flat)
    uneven.loc[uneven.quantity == "background_ratio", "estimate"] = 0.01  # a ripple on a black background
    assert "uneven_illumination" not in rk.plausible_corruptions(uneven, flat)


def test_ranking_orders_by_the_mean_over_conditions_with_intervals_and_ties():
    rng = np.random.default_rng(0)
    rows = []
    for model, level in (("a", 0.9), ("b", 0.89), ("c", 0.5)):
        for condition, drop in (("as estimated", 0.0), ("SNR / 2", 0.1)):
            for image in range(8):
                rows.append({"model": model, "regime": "standard", "seed": 0, "condition": condition, "image": image,
                             "iou": level - drop + rng.normal(0, 0.02), "dice": 0.0})
    ranked = rk.ranking(pd.DataFrame(rows), n_boot=200)
    assert ranked.model.tolist() == ["a", "b", "c"] and ranked["rank"].tolist() == [1, 2, 3]
    assert (ranked.low <= ranked.score).all() and (ranked.score <= ranked.high).all()
    assert ranked.tied.tolist() == [False, True, False]
    assert ranked.loc[0, "as estimated"] == pytest.approx(0.9, abs=0.02)
    assert ranked.loc[0, "score"] == pytest.approx(0.85, abs=0.02)


# --- realism check and its thresholds -----------------------------------------------------------

def test_thresholds_are_checked_and_replaceable():
    assert rc.check_thresholds({"intensity": 0.5})["intensity"] == 0.5
    with pytest.raises(ValueError, match="thresholds: unknown statistic 'colour'"):
        rc.check_thresholds({"colour": 1.0})
    with pytest.raises(ValueError, match="thresholds: spectrum must be a positive number"):
        rc.check_thresholds({"spectrum": -1})


def test_frame_tiles_cut_every_frame_and_keep_at_most_the_limit():
    frames = [np.zeros((400, 200)), np.zeros((192, 192))]
    assert rc.frame_tiles(frames, 64).shape == (6 * 3 + 9, 64, 64)
    assert rc.frame_tiles(frames, 64, limit=5).shape == (5, 64, 64)
    assert rc.realism_size(frames) == 192 and rc.realism_size([np.zeros((100, 300))]) == 96


def test_a_matched_simulation_passes_the_realism_check():
    """Images from the simulator itself, matched from their own estimate, are within every threshold."""
    raw = make_dataset("nuclei", 4, 192, snr=5, seed=11).raw
    _, table = rc.matched_distances(list(raw.astype(np.float64)), "nuclei")
    assert set(table.key) == set(THRESHOLDS) and table.within.all(), table


def test_matched_distances_of_the_same_frames_are_computed_once(monkeypatch):
    frames = list(make_dataset("nuclei", 2, 96, snr=5, seed=12).raw.astype(np.float64))
    estimate, table = rc.matched_distances(frames, "nuclei", seed=3)
    table.loc[0, "distance"] = -1.0  # a copy: the caller's changes stay with the caller

    def fail(*args, **kwargs):
        raise AssertionError("estimated again")

    monkeypatch.setattr(acquisition, "estimate", fail)
    again_estimate, again = rc.matched_distances([f.copy() for f in frames], "nuclei", seed=3,
                                                 thresholds=dict(THRESHOLDS))  # the defaults, spelled out
    pd.testing.assert_frame_equal(again_estimate, estimate)
    assert (again.distance >= 0).all()
    with pytest.raises(AssertionError, match="estimated again"):  # another seed, another simulation
        rc.matched_distances(frames, "nuclei", seed=4)
    frames[0][0, 0] += 1.0
    with pytest.raises(AssertionError, match="estimated again"):  # other pixels
        rc.matched_distances(frames, "nuclei", seed=3)
    # The memo holds the whole basis of the thresholds at standard, so that the advice on each source reuses it.
    n_sets = len(val.SOURCES) + 1 + len(val.SIMULATED)  # the labelled sources, the negative, the simulated controls
    assert rc._MATCHED_MEMO_SIZE >= n_sets * len(resolve("standard").threshold_seeds) + 1


# --- validation ---------------------------------------------------------------------------------

def test_validation_table_compares_the_advised_ranking_with_the_labels():
    candidates = [("a", "standard"), ("b", "standard"), ("c", "noise"), ("d", "noise"), ("e", "randomized")]
    advised = pd.DataFrame({"model": [m for m, _ in candidates], "regime": [r for _, r in candidates],
                            "score": [0.9, 0.8, 0.7, 0.6, 0.5]})
    truth = advised.rename(columns={"score": "iou"}).assign(iou=[0.7, 0.9, 0.6, 0.5, 0.4])
    truth = truth.sort_values("iou", ascending=False, ignore_index=True).assign(true_rank=[1, 2, 3, 4, 5])
    table = val.validation_table({"dsb2018": advised}, {"dsb2018": truth}, n_boot=200)
    row = table.iloc[0]
    assert row.labelling == "expert" and row.n == 5 and row.r == pytest.approx(0.9)
    assert row.advised_first == "a (standard)" and row.its_true_rank == 2 and bool(row.in_top_3)
    assert row.refused == ""


def test_validation_sources_load_raw_frames():
    frames = val.source_frames("dsb2018")
    assert len(frames) == 1 and frames[0].ndim == 2 and frames[0].dtype == np.float64
    with pytest.raises(ValueError, match="source: expected one of"):
        val.source_frames("hela")


def test_validation_tiles_are_capped_evenly_per_source():
    every, capped = val.source_tiles(), val.source_tiles(limit=5)
    for source, tiles in every.items():
        kept = capped[source]
        assert len(kept.images) == min(5, len(tiles.images)) == len(kept.names) == len(kept.labels)
        assert kept.names[0] == tiles.names[0] and kept.names[-1] == tiles.names[-1]  # spread over the source
        assert np.array_equal(kept.images[0], tiles.images[0]) and np.array_equal(kept.masks[-1], tiles.masks[-1])
    assert all(val.source_tiles(limit=10_000)[s].names == every[s].names for s in every)  # a cap above: all
    with pytest.raises(ValueError, match="limit"):
        val.source_tiles(limit=0)


def test_condition_scores_give_every_condition_its_interval():
    rows = [{"model": "a", "regime": "standard", "seed": s, "condition": c, "image": i, "iou": 0.5 + 0.1 * s + d,
             "dice": 0.0} for s in (0, 1) for c, d in (("as estimated", 0.2), ("SNR / 2", 0.0)) for i in range(4)]
    table = rk.condition_scores(pd.DataFrame(rows), n_boot=100)
    assert table.condition.tolist() == ["as estimated", "SNR / 2"]
    assert table.iou.tolist() == pytest.approx([0.75, 0.55])
    assert (table.low <= table.iou).all() and (table.iou <= table.high).all()


# --- the optional robust IoU (--attacks) ---------------------------------------------------------

def test_the_leader_and_its_ties_are_attacked_first_with_the_seed_the_recommendation_uses():
    from fmlib.advice import robust

    ranked = pd.DataFrame({"model": ["a", "b", "c", "d"], "regime": "standard", "tied": [False, False, True, False]})
    assert robust.attacked_candidates(ranked, limit=2) == [("a", "standard"), ("c", "standard")]
    assert robust.attacked_candidates(ranked, limit=3)[-1] == ("b", "standard")
    with pytest.raises(ValueError, match="limit"):
        robust.attacked_candidates(ranked, limit=0)
    table = pd.DataFrame({"model": "a", "regime": "standard", "seed": [0, 0, 1, 1], "iou": [0.5, 0.6, 0.7, 0.8]})
    assert robust.best_seeds(table) == {("a", "standard"): 1}


def test_robust_scores_lower_the_clean_iou_keep_the_order_and_carry_a_ci_over_images():
    from fmlib.advice import robust

    cfg = resolve("smoke")
    dataset = make_dataset("nuclei", 2, 64, snr=8, seed=1)
    nets = {"b": threshold_segmenter(40.0), "a": threshold_segmenter(40.0, level=0.4)}
    chosen = [("b", "standard", 1), ("a", "standard", 0)]  # the leader first, not in alphabetical order
    table = robust.robust_scores(cfg, chosen, lambda m, r, s: nets[m], dataset, progress=False)
    assert len(table) == 2 * cfg.n_attack_images and (table.eps_255 == robust.ATTACK_EPS_255).all()
    assert (table.clean_iou > 0.3).all()  # the segmenters work on clean images
    assert (table.robust_iou <= table.clean_iou + 1e-9).all() and (table.robust_iou < table.clean_iou).any()
    larger = robust.robust_scores(cfg, chosen[:1], lambda m, r, s: nets[m], dataset, eps_255=32, progress=False)
    first = table[table.model == "b"]
    assert larger.robust_iou.mean() < first.robust_iou.mean()  # a larger budget does more damage
    with pytest.raises(ValueError, match="eps_255"):
        robust.robust_scores(cfg, chosen, lambda m, r, s: nets[m], dataset, eps_255=0)
    summary = robust.robust_summary(table, n_boot=100)
    assert summary.model.tolist() == ["b", "a"] and summary.seed.tolist() == [1, 0]
    assert (summary.robust_low <= summary.robust_iou).all() and (summary.robust_iou <= summary.robust_high).all()
    with pytest.raises(ValueError, match="table: missing columns"):
        robust.robust_summary(table.drop(columns="converged"))


def test_the_cli_hands_attacks_and_their_budget_to_advise(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from fmlib import cli

    seen = {}

    def fake_advise(images, structure, **kwargs):
        seen.update(kwargs, images=images, structure=structure)
        return SimpleNamespace(answer="fake")

    monkeypatch.setattr(cli, "advise", fake_advise)
    monkeypatch.setattr(cli, "write_report", lambda advice, out, export: {})
    args = ["advise", "a.tif", "--structure", "nuclei", "--out", str(tmp_path), "--profile", "smoke"]
    assert cli.main(args) == 0 and seen["attacks"] is False and seen["attack_eps_255"] == 2.0
    assert cli.main([*args, "--attacks", "--attack-eps-255", "4"]) == 0
    assert seen["attacks"] is True and seen["attack_eps_255"] == 4.0 and seen["images"] == ["a.tif"]

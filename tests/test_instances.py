import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fmlib import instances


def _discs(centres, radius=6, shape=(32, 64)):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    labels = np.zeros(shape, np.int32)
    for k, (cy, cx) in enumerate(centres, start=1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = k
    return labels


def test_touching_nuclei_are_split_and_specks_removed():
    touching = _discs([(16, 16), (16, 28)]) > 0
    assert instances.split_touching(touching).max() == 2
    speck = np.zeros((32, 32), bool)
    speck[3:6, 3:6] = True  # 9 pixels: below the default minimum size
    assert instances.split_touching(speck).max() == 0
    with pytest.raises(ValueError, match="mask"):
        instances.split_touching(np.zeros((2, 8, 8)))


def test_matching_counts_true_false_and_missed_objects():
    truth = _discs([(10, 10), (10, 40), (24, 24)])
    perfect = instances.match(truth, truth)
    assert (perfect.tp == 3).all() and (perfect.fp == 0).all() and (perfect.fn == 0).all()
    shifted = _discs([(10, 12), (10, 40)])  # one nucleus moved by 2 px, one found, one missed
    table = instances.match(truth, shifted).set_index("threshold")
    assert table.loc[0.5].tolist() == [2, 0, 1] and table.loc[0.95].tolist() == [1, 1, 2]
    merged = _discs([(10, 25)], radius=20)  # one blob over two nuclei matches at most one of them
    assert instances.match(truth, merged, [0.1]).tp.iloc[0] <= 1
    with pytest.raises(ValueError, match="pred_labels"):
        instances.match(truth, truth[:, :10])


def test_summaries_of_perfect_and_empty_predictions():
    truth = np.stack([_discs([(10, 10), (20, 40)]), _discs([(16, 30)])])
    perfect = instances.summarize(instances.instance_table(truth, truth), n_boot=50)
    assert np.allclose(perfect.estimate, 1.0) and (perfect.n_true == 3).all()
    empty = instances.summarize(instances.instance_table(truth, np.zeros_like(truth)), n_boot=50)
    assert np.allclose(empty.estimate, 0.0) and (empty.n_pred == 0).all()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(6, 25), st.integers(6, 57)), min_size=1, max_size=5),
       st.lists(st.tuples(st.integers(6, 25), st.integers(6, 57)), min_size=0, max_size=5))
def test_scores_are_bounded_and_ap_never_exceeds_f1_at_half(true_centres, pred_centres):
    truth, pred = _discs(true_centres, radius=4), _discs(pred_centres, radius=4)
    summary = instances.summarize(instances.instance_table(truth[None], pred[None]), n_boot=20)
    f1 = summary[summary.metric == "f1"].set_index("threshold").estimate
    ap = summary[summary.metric == "ap"].estimate.iloc[0]
    assert ((0 <= summary.estimate) & (summary.estimate <= 1)).all()
    assert f1.is_monotonic_decreasing and ap <= f1.loc[0.5] + 1e-12
    assert (summary.ci_low <= summary.ci_high + 1e-12).all()


def test_docstring_examples():
    assert doctest.testmod(instances).failed == 0

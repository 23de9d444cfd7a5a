"""The plateau rule: a run is converged only when more training at a learning rate that still trains
stopped helping."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fmlib.plateau import PlateauRule, learning_rate, plateau_reached


def test_a_rising_curve_is_not_converged():
    scores = [0.1 * k for k in range(10)]
    assert not plateau_reached(scores, [1e-3] * 10, patience=3, base_lr=1e-3)


def test_a_flat_curve_at_a_live_learning_rate_is_a_plateau():
    scores = [0.2, 0.6, 0.8, 0.801, 0.799, 0.80]
    assert plateau_reached(scores, [1e-3] * 6, patience=3, min_delta=0.002, base_lr=1e-3)


def test_a_curve_flattened_only_by_a_vanished_learning_rate_is_not_converged():
    """A cosine schedule to zero flattens any curve: that is no evidence."""
    steps = 10
    lrs = [learning_rate(k * 100, 1e-3, schedule="cosine", max_steps=steps * 100) for k in range(1, steps + 1)]
    scores = [0.2, 0.5, 0.7, 0.75, 0.78, 0.79, 0.79, 0.79, 0.79, 0.79]
    assert lrs[-1] < 0.05 * 1e-3
    assert not plateau_reached(scores, lrs, patience=3, base_lr=1e-3)


def test_the_rule_reduces_the_learning_rate_before_it_declares_convergence():
    rule = PlateauRule(patience=2, min_delta=0.0, max_reductions=2)
    scores, lrs, reductions, since, actions = [], [], 0, 0, []
    for score in [0.5, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7]:
        scores.append(score)
        lrs.append(learning_rate(0, 1e-3, reductions=reductions))
        action, reductions, since = rule.step(scores, lrs, reductions, since, 1e-3)
        actions.append(action)
        if action == "converged":
            break
    assert actions == ["go on", "go on", "go on", "reduce", "go on", "reduce", "go on", "converged"]
    assert lrs[-1] == pytest.approx(0.25e-3)


def test_an_improvement_after_a_reduction_resets_the_plateau():
    rule = PlateauRule(patience=2, min_delta=0.0, max_reductions=1)
    scores = [0.5, 0.7, 0.7, 0.7, 0.8, 0.8]   # the reduction after 0.7, 0.7 lifted the curve
    lrs = [1e-3] * 4 + [5e-4] * 2
    assert rule.step(scores, lrs, 1, 4, 1e-3)[0] == "go on"


def test_a_schedule_that_sets_its_own_rate_converges_without_reductions():
    rule = PlateauRule(patience=2, min_delta=0.0, max_reductions=2)
    assert rule.step([0.5, 0.7, 0.7, 0.7], [1e-3] * 4, 0, 0, 1e-3, can_reduce=False)[0] == "converged"


@given(st.lists(st.floats(0, 1), min_size=1, max_size=30), st.integers(1, 10))
def test_plateau_needs_more_scores_than_its_patience(scores, patience):
    result = plateau_reached(scores, [1.0] * len(scores), patience=patience, base_lr=1.0)
    if len(scores) <= patience:
        assert not result
    else:
        assert result == (max(scores[-patience:]) <= max(scores[:-patience]))


@given(st.integers(0, 10_000), st.integers(0, 500))
def test_warm_up_rises_linearly_to_the_base_rate(step, warmup):
    lr = learning_rate(step, 1.0, warmup_steps=warmup)
    assert 0 < lr <= 1.0
    assert lr == (min(1.0, (step + 1) / warmup) if warmup else 1.0)


def test_cosine_and_step_schedules():
    assert learning_rate(0, 1.0, schedule="cosine", max_steps=100) == 1.0
    assert math.isclose(learning_rate(100, 1.0, schedule="cosine", max_steps=100), 0.0, abs_tol=1e-12)
    assert learning_rate(45, 1.0, schedule="step", step_every=20, step_gamma=0.5) == 0.25


@pytest.mark.parametrize("kwargs, name", [(dict(patience=0), "patience"), (dict(factor=1.5), "factor"),
                                          (dict(max_reductions=-1), "max_reductions")])
def test_bad_rules_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        PlateauRule(**kwargs)


def test_mismatched_lengths_and_schedules_are_errors():
    with pytest.raises(ValueError, match="lrs"):
        plateau_reached([0.1, 0.2], [1.0], patience=1, base_lr=1.0)
    with pytest.raises(ValueError, match="schedule"):
        learning_rate(0, 1.0, schedule="linear")


def test_the_examples_in_the_docstrings_hold():
    import doctest

    from fmlib import plateau

    assert doctest.testmod(plateau).failed == 0

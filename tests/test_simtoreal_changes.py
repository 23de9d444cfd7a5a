import doctest

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fmlib import simtoreal
from fmlib.simtoreal import changes


def test_doctests():
    result = doctest.testmod(changes, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def _table(before: list[float], after: list[float], source: str = "a") -> pd.DataFrame:
    rows = [{"source": source, "method": f"m{k}", "protocol": protocol, "iou": value}
            for protocol, values in (("native", before), ("sized", after)) for k, value in enumerate(values)]
    return pd.DataFrame(rows)


scores = st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=8)


@settings(max_examples=50, deadline=None)
@given(before=scores, after=scores)
def test_the_change_pairs_each_method_with_itself_and_counts_the_methods_it_helps(before, after):
    n = min(len(before), len(after))
    before, after = before[:n], after[:n]
    wide = simtoreal.protocol_change(_table(before, after), value="iou", before="native", after="sized")
    assert len(wide) == n
    assert np.allclose(wide.change.to_numpy(), np.subtract(after, before))
    summary = simtoreal.change_summary(wide)
    assert summary.n_methods.iloc[0] == n
    assert summary.n_better.iloc[0] == sum(a > b for a, b in zip(after, before))
    assert summary.median_change.iloc[0] == pytest.approx(float(np.median(np.subtract(after, before))))


def test_the_summary_is_per_source_and_leaves_out_methods_scored_one_way():
    table = pd.concat([_table([0.5, 0.6], [0.7, 0.5], "a"), _table([0.2], [0.3], "b")], ignore_index=True)
    table = table[~((table.source == "a") & (table.method == "m1") & (table.protocol == "sized"))]
    summary = simtoreal.change_summary(
        simtoreal.protocol_change(table, value="iou", before="native", after="sized"), by="source")
    assert summary.loc["a"].tolist() == pytest.approx([1, 1, 0.2])
    assert summary.loc["b"].tolist() == pytest.approx([1, 1, 0.1])


def test_the_change_refuses_an_unknown_protocol_a_missing_column_and_nan():
    table = _table([0.5], [0.6])
    with pytest.raises(ValueError, match="after"):
        simtoreal.protocol_change(table, value="iou", before="native", after="resized")
    with pytest.raises(ValueError, match="missing"):
        simtoreal.protocol_change(table, value="dice", before="native", after="sized")
    table.loc[0, "iou"] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        simtoreal.protocol_change(table, value="iou", before="native", after="sized")
    with pytest.raises(ValueError, match="change"):
        simtoreal.change_summary(table)

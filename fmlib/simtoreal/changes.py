"""What a change of protocol does to each method's score: the same models scored two ways (tiles as
they are against images resampled to the training diameter, say), paired per method.

The chapter asks the same question of several protocol changes: for how many methods does the
change help, and by how much in the median? Pairing per method (and source) keeps the answer about
the protocol, not about which methods happen to be good.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

#: The columns of `change_summary`.
SUMMARY_COLUMNS = ["n_methods", "n_better", "median_change"]


def protocol_change(table: pd.DataFrame, *, value: str, before: str, after: str,
                    index: Sequence[str] = ("source", "method"), protocol: str = "protocol") -> pd.DataFrame:
    """The score of each method under two protocols side by side, and the change ``after - before``.

    Parameters
    ----------
    table : pandas.DataFrame
        Tidy scores: one row per `index` group and protocol (several rows of a group are averaged).
    value : str
        The score column.
    before, after : str
        The two values of the `protocol` column to compare.
    index : sequence of str
        The columns that identify a paired unit (a method on a source).
    protocol : str
        The column that names the protocol.

    Returns
    -------
    pandas.DataFrame
        Indexed by `index`, with columns `before`, `after` and ``change``; only units scored under
        both protocols.

    Examples
    --------
    >>> t = pd.DataFrame({"source": "a", "method": ["m", "m", "n", "n"], "protocol": ["x", "y", "x", "y"],
    ...                   "iou": [0.5, 0.7, 0.6, 0.5]})
    >>> protocol_change(t, value="iou", before="x", after="y").change.round(2).tolist()
    [0.2, -0.1]
    """
    index = list(index)
    missing = [c for c in [*index, value, protocol] if c not in table.columns]
    if missing:
        raise ValueError(f"table: expected columns {[*index, value, protocol]}, missing {missing}")
    present = set(table[protocol].unique())
    for name, level in (("before", before), ("after", after)):
        if level not in present:
            raise ValueError(f"{name}: expected one of the table's protocols {sorted(map(str, present))}, "
                             f"got {level!r}")
    if table[value].isna().any():
        raise ValueError(f"table: column {value!r} holds NaN; expected a score for every row")
    wide = table.pivot_table(index=index, columns=protocol, values=value, aggfunc="mean")[[before, after]]
    wide = wide.dropna()  # a unit scored one way only has no pair
    wide.columns.name = None
    wide["change"] = wide[after] - wide[before]
    return wide


def change_summary(changes: pd.DataFrame, *, by: str | Sequence[str] | None = None) -> pd.DataFrame:
    """How many paired units a protocol change improves, and the median change, overall or per `by`.

    Parameters
    ----------
    changes : pandas.DataFrame
        With a ``change`` column (`protocol_change`, or any paired table).
    by : str or sequence of str, optional
        Index levels or columns to summarise separately (e.g. ``"source"``).

    Returns
    -------
    pandas.DataFrame
        Columns ``n_methods``, ``n_better`` (change above zero) and ``median_change``; one row per
        `by` group, or a single row.

    Examples
    --------
    >>> c = pd.DataFrame({"change": [0.2, -0.1, 0.05]})
    >>> s = change_summary(c)
    >>> int(s.n_better.iloc[0]), float(s.median_change.iloc[0])
    (2, 0.05)
    """
    if "change" not in changes.columns:
        raise ValueError(f"changes: expected a 'change' column, got {list(changes.columns)}")

    parts = {None: changes} if by is None else dict(iter(changes.groupby(by)))
    out = pd.DataFrame({key: {"n_methods": len(part), "n_better": int((part.change > 0).sum()),
                              "median_change": float(part.change.median())} for key, part in parts.items()}).T
    out = out.astype({"n_methods": int, "n_better": int, "median_change": float})[SUMMARY_COLUMNS]
    if by is None:
        return out.reset_index(drop=True)
    out.index.names = [by] if isinstance(by, str) else list(by)
    return out

"""When to drop exact duplicate rows: only when that is what the data calls for.

A row that repeats an earlier one (every used column and the target) is either a copy
(an export that wrote a customer twice) or a second, real observation that happens to
look the same (two survey respondents who gave the same three answers). Dropping the
first kind removes a bias; dropping the second kind deletes data and reshapes the class
balance. ``data.drop_duplicates``:

* ``true``: drop every later copy, whatever the count;
* ``false``: keep them all;
* ``auto`` (the default): drop them only when both hold:

  1. chance does not explain them: if the columns were independent with the value
     frequencies the file has (estimated without bias), the rows would repeat by chance:
     ``n - K (1 - exp(-n / K))`` with ``K = 1 / prod(sum_v p_v^2)`` (the expected
     number of repeats when n rows fall into K equally likely cells); the duplicates
     are copies only when the found count exceeds ``CHANCE_FACTOR`` times that;
  2. they are few: at most ``AUTO_MAX_FRACTION`` of the rows. Dropping more than that
     is never done without ``data.drop_duplicates=true`` said outright.

Otherwise they are kept and the check is a warning that says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hpo.errors import ConfigError

SETTINGS = ("auto", "true", "false")
AUTO_MAX_FRACTION = 0.05
CHANCE_FACTOR = 2.0


@dataclass
class DuplicateDecision:
    """What the rule found and decided; ``reason`` says why, for the report."""

    found: int
    rows: int
    expected_by_chance: float
    drop: bool
    setting: str
    reason: str


def duplicates_setting(data_cfg) -> str:
    """``data.drop_duplicates`` as ``auto``, ``true`` or ``false``."""
    value = getattr(data_cfg, "drop_duplicates", "auto")
    text = str(value).strip().lower()
    if text not in SETTINGS:
        raise ConfigError(
            f"config key `data.drop_duplicates`: must be auto, true or false, got {value!r}."
        )
    return text


def expected_by_chance(table: pd.DataFrame) -> float:
    """Repeats that rows with these columns' value frequencies, drawn independently, would
    show by chance (module docstring). Correlated columns repeat more than this."""
    n = len(table)
    if n < 2 or table.shape[1] == 0:
        return 0.0
    log_collision = 0.0
    for column in table.columns:
        p = table[column].value_counts(normalize=True, dropna=False).to_numpy()
        # sum p^2 of the sample overstates the chance that two rows agree by 1/n; this
        # is the unbiased estimate (0 for a column whose values are all distinct).
        collision = (n * float(np.sum(p * p)) - 1.0) / (n - 1)
        if collision <= 0.0:
            return 0.0
        log_collision += math.log(collision)
    cells = math.exp(-log_collision)
    return float(n - cells * -math.expm1(-n / cells))


def decide(table: pd.DataFrame, duplicated: np.ndarray, setting: str) -> DuplicateDecision:
    """Apply ``setting`` to the duplicates of ``table`` (the used columns and the target).

    Args:
        table: the rows the duplicates were found in, target included.
        duplicated: True for each row equal to an earlier one.
        setting: ``auto``, ``true`` or ``false`` (``duplicates_setting``).
    """
    found, rows = int(duplicated.sum()), len(table)
    chance = expected_by_chance(table) if found else 0.0
    share = found / rows if rows else 0.0
    if setting != "auto" or not found:
        drop = setting == "true" and found > 0
        how = "data.drop_duplicates=" + setting
        reason = f"{'dropped' if drop else 'kept'} as {how} says" if found else ""
        return DuplicateDecision(found, rows, chance, drop, setting, reason)
    if found <= CHANCE_FACTOR * chance:
        reason = (
            f"kept: rows with these columns' values repeat by chance about {chance:,.0f} times "
            f"in {rows:,} rows, so the {found:,} repeats look like real observations "
            "(data.drop_duplicates=true drops them)"
        )
        return DuplicateDecision(found, rows, chance, False, setting, reason)
    if share > AUTO_MAX_FRACTION:
        reason = (
            f"kept: they are {share:.0%} of the rows, more than data.drop_duplicates=auto "
            f"drops ({AUTO_MAX_FRACTION:.0%}); if they are copies, set "
            "data.drop_duplicates=true"
        )
        return DuplicateDecision(found, rows, chance, False, setting, reason)
    reason = (
        f"dropped: chance explains about {chance:,.0f} of them, so they look like copies "
        "(data.drop_duplicates=false keeps them)"
    )
    return DuplicateDecision(found, rows, chance, True, setting, reason)

"""The duplicate-row rule (hpo.data.duplicates): copies go, real repeats stay, and most of
a file is never dropped unless data.drop_duplicates=true says so."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from data_tables import clean_frame

from hpo.data import inspect_data
from hpo.data.duplicates import expected_by_chance


def _check(prepared):
    return {c.name: c for c in prepared.quality.checks}["duplicate_rows"]


def _survey(rows: int = 6000, seed: int = 0) -> pd.DataFrame:
    """Three answers on small scales and an outcome: respondents repeat naturally."""
    rng = np.random.default_rng(seed)
    age = rng.choice(["18-30", "31-50", "51+"], rows, p=[0.5, 0.3, 0.2])
    smoker = rng.choice(["yes", "no"], rows, p=[0.3, 0.7])
    score = rng.integers(1, 6, rows)
    risk = (smoker == "yes") * 1.5 + (age == "51+") + score / 3 + rng.normal(size=rows)
    label = np.where(risk > np.quantile(risk, 0.8), "ill", "well")  # 20% ill
    return pd.DataFrame({"age": age, "smoker": smoker, "score": score, "label": label})


def test_natural_repeats_in_low_cardinality_data_are_kept(table_cfg):
    frame = _survey()
    prepared = inspect_data(table_cfg(frame))
    check = _check(prepared)
    assert check.count > 0.9 * len(frame)  # nearly every row repeats an earlier one
    assert check.action == "kept" and check.status == "warning"
    assert "repeat by chance" in check.detail and "data.drop_duplicates=true" in check.detail
    assert len(prepared.y) == len(frame)  # nothing lost
    kept = pd.Series(np.asarray(prepared.classes)[prepared.y]).value_counts()
    assert kept.to_dict() == frame["label"].value_counts().to_dict()


def test_said_outright_true_drops_them_all(table_cfg):
    frame = _survey(rows=2000)
    prepared = inspect_data(table_cfg(frame, "data.drop_duplicates=true"))
    check = _check(prepared)
    assert check.action == "dropped" and len(prepared.y) == len(frame) - check.count


def test_copies_are_dropped_but_not_most_of_a_file(table_cfg):
    frame = clean_frame(rows=200)
    few = pd.concat([frame, frame.iloc[:4]], ignore_index=True)  # 2% copies
    prepared = inspect_data(table_cfg(few))
    assert _check(prepared).action == "dropped" and len(prepared.y) == 200
    many = pd.concat([frame, frame.iloc[:100]], ignore_index=True)  # a third copies
    prepared = inspect_data(table_cfg(many))
    check = _check(prepared)
    assert check.action == "kept" and len(prepared.y) == 300
    assert "33% of the rows" in check.detail and "data.drop_duplicates=true" in check.detail


def test_bad_setting_names_the_key(table_cfg):
    from hpo.errors import ConfigError

    with pytest.raises(ConfigError, match="`data.drop_duplicates`: must be auto, true or false"):
        inspect_data(table_cfg(clean_frame(), "data.drop_duplicates=sometimes"))


@pytest.mark.parametrize(("cells", "rows"), [(10, 50), (200, 300), (5000, 2000)])
def test_expected_repeats_match_independent_draws(cells, rows):
    rng = np.random.default_rng(1)
    samples = [pd.DataFrame({"a": rng.integers(0, cells, rows)}) for _ in range(300)]
    found = np.mean([s["a"].duplicated().sum() for s in samples])
    estimated = np.mean([expected_by_chance(s) for s in samples])
    assert estimated == pytest.approx(found, rel=0.05)


def test_a_column_of_distinct_values_leaves_nothing_to_chance():
    frame = pd.DataFrame({"a": np.arange(100) % 3, "b": np.arange(100) * 0.5})
    assert expected_by_chance(frame) == 0.0

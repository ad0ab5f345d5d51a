"""Preprocessing never sees validation or test rows while fitting; the cleaning spec
replays on raw rows; groups stay whole; every fold shares one column layout."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from data_tables import clean_frame

from hpo.data.clean import clean_features
from hpo.data.files import read_frame
from hpo.data.prepare import prepare_data
from hpo.data.preprocessing import MISSING_CATEGORY


def frame_with_gaps(rows: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = clean_frame(rows, seed)
    frame["x3"] = rng.exponential(size=rows)  # skewed: mean and median differ
    for column in ("x1", "x3"):
        frame.loc[rng.choice(rows, 15, replace=False), column] = np.nan
    frame.loc[rng.choice(rows, 10, replace=False), "color"] = np.nan
    return frame


def test_each_folds_imputer_scaler_and_encoder_are_fit_on_its_train_part_only(table_cfg):
    prepared = prepare_data(table_cfg(frame_with_gaps()))
    rest = prepared.features.iloc[prepared.train_idx].reset_index(drop=True)
    numeric = ["x1", "x2", "visits", "x3"]
    for fold, pre in zip(prepared.trial_data.folds, prepared.fold_preprocessors):
        train, seen = rest.iloc[fold.train_rows], rest  # `seen`: train + validation rows
        numbers = pre.named_transformers_["numeric"]
        medians = numbers.named_steps["impute"].statistics_
        assert np.allclose(medians, train[numeric].median())
        assert not np.allclose(medians, seen[numeric].median())  # not fit on val rows
        imputed = train[numeric].fillna(train[numeric].median())
        scaler = numbers.named_steps["scale"]
        assert np.allclose(scaler.mean_[: len(numeric)], imputed.mean())
        assert np.allclose(scaler.scale_[: len(numeric)], imputed.std(ddof=0))
        categories = pre.named_transformers_["categorical"]
        assert categories.named_steps["impute"].statistics_[0] == MISSING_CATEGORY
        encoded = set(categories.named_steps["encode"].categories_[0])
        gaps = {MISSING_CATEGORY} if train["color"].isna().any() else set()
        assert encoded == set(train["color"].dropna()) | gaps
        # the train part comes out standardized; the validation part with train's numbers
        assert np.allclose(fold.X_train[:, : len(numeric)].mean(axis=0), 0.0, atol=1e-5)
        val = rest.iloc[fold.val_rows][numeric].fillna(train[numeric].median())
        assert np.allclose(
            fold.X_val[:, : len(numeric)], (val - imputed.mean()) / imputed.std(ddof=0), atol=1e-4
        )


def test_a_missing_category_is_a_level_of_its_own(table_cfg):
    prepared = prepare_data(table_cfg(frame_with_gaps()))
    names = prepared.trial_data.feature_names
    level = f"categorical__color_{MISSING_CATEGORY}"
    assert level in names
    rest = prepared.features.iloc[prepared.train_idx].reset_index(drop=True)
    fold = prepared.trial_data.folds[0]
    gaps = rest.iloc[fold.train_rows]["color"].isna().to_numpy()
    column = fold.X_train[:, names.index(level)]
    assert gaps.any() and np.array_equal(column == 1.0, gaps)  # exactly the missing rows
    colors = [n for n in names if n.startswith("categorical__color_") and n != level]
    assert not fold.X_train[gaps][:, [names.index(n) for n in colors]].any()


def test_missing_indicators_come_with_the_numeric_imputer(table_cfg):
    prepared = prepare_data(table_cfg(frame_with_gaps()))
    names = prepared.trial_data.feature_names
    assert "numeric__missingindicator_x1" in names and "numeric__missingindicator_x3" in names
    assert "numeric__missingindicator_x2" not in names  # x2 has no gaps


def test_folds_share_one_layout_when_a_category_is_rare(table_cfg):
    frame = clean_frame(rows=120)
    frame.loc[7, "color"] = "purple"  # in one row: at least one train part never sees it
    prepared = prepare_data(table_cfg(frame))
    layout = prepared.trial_data.feature_names
    folds = prepared.trial_data.folds
    widths = {f.X_train.shape[1] for f in folds} | {f.X_val.shape[1] for f in folds}
    assert widths == {len(layout)} and prepared.trial_data.input_dim == len(layout)
    rest = prepared.features.iloc[prepared.train_idx].reset_index(drop=True)
    unseen = 0
    for fold in folds:
        if "purple" not in set(rest.iloc[fold.train_rows]["color"]):
            unseen += 1
            if "categorical__color_purple" in layout:
                # zero everywhere, as handle_unknown="ignore" gives an unseen category
                purple = layout.index("categorical__color_purple")
                assert not fold.X_train[:, purple].any() and not fold.X_val[:, purple].any()
    assert unseen >= 1


def test_cleaning_spec_is_json_and_replays_on_raw_rows(table_cfg):
    frame = frame_with_gaps().astype({"x2": object, "color": object})
    frame.loc[[3, 4], "x2"] = ["oops", "?"]
    frame.loc[[5, 6], "color"] = [" Red", "GREEN"]
    cfg = table_cfg(frame)
    prepared = prepare_data(cfg)
    spec = json.loads(json.dumps(prepared.cleaning))  # what an export stores
    raw = read_frame(cfg.data.path, "csv", cfg.data.na_values)
    replayed = clean_features(raw, spec).iloc[prepared.positions].reset_index(drop=True)
    pd.testing.assert_frame_equal(replayed, prepared.features)
    # rows that arrive as plain text (a JSON request, a CSV read without types) too
    as_text = raw.astype(object).where(raw.notna(), None).map(lambda v: v if v is None else str(v))
    again = clean_features(as_text, spec).iloc[prepared.positions].reset_index(drop=True)
    pd.testing.assert_frame_equal(again, prepared.features)


def test_groups_stay_whole_in_the_test_split_and_the_folds(table_cfg):
    frame = clean_frame(rows=160)
    frame.insert(0, "shop", np.repeat([f"s{i}" for i in range(16)], 10))
    prepared = prepare_data(table_cfg(frame, "data.group_column=shop", "cv.folds=3"))
    assert prepared.cv_strategy == "group" and "shop" not in prepared.features.columns
    groups = prepared.groups
    assert set(groups[prepared.test_idx]).isdisjoint(groups[prepared.train_idx])
    rest_groups = groups[prepared.train_idx]
    for fold in prepared.trial_data.folds:
        assert set(rest_groups[fold.train_rows]).isdisjoint(rest_groups[fold.val_rows])


def test_group_column_with_other_cv_strategy_is_refused(table_cfg):
    from hpo.errors import ConfigError

    frame = clean_frame(rows=160)
    frame.insert(0, "shop", np.repeat([f"s{i}" for i in range(16)], 10))
    with pytest.raises(ConfigError, match="cv.strategy=group"):
        prepare_data(table_cfg(frame, "data.group_column=shop", "cv.strategy=kfold"))


@pytest.mark.parametrize(("scaling", "encoding"), [("robust", "ordinal"), ("none", "onehot")])
def test_scaling_and_encoding_options(table_cfg, scaling, encoding):
    cfg = table_cfg(frame_with_gaps(), f"data.scaling={scaling}", f"data.encoding={encoding}")
    prepared = prepare_data(cfg)
    pre = prepared.fold_preprocessors[0]
    steps = pre.named_transformers_["numeric"].named_steps
    assert ("scale" in steps) == (scaling != "none")
    encoder = pre.named_transformers_["categorical"].named_steps["encode"]
    assert (
        type(encoder).__name__ == {"ordinal": "OrdinalEncoder", "onehot": "OneHotEncoder"}[encoding]
    )

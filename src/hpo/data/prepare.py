"""From the configured source to the fold arrays every trial trains on.

Order matters for leakage: load -> clean (column-wise rules and row-wise drops, no label
statistics) -> cut the test split -> build folds on the rest -> fit preprocessing on each
fold's train part only. ``inspect_data`` runs everything up to the split (what
``hpo check-data`` shows); ``prepare_data`` adds the folds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hpo.data import quality
from hpo.data import target_transform as target_transforms
from hpo.data.arrays import FoldArrays, TrialData
from hpo.data.clean import clean_features, clean_target, narrow_spec, plan_cleaning, plan_drops
from hpo.data.duplicates import decide, duplicates_setting
from hpo.data.files import listed
from hpo.data.preprocessing import (
    check_options,
    fit_preprocessor,
    merge_layouts,
    output_names,
    transform_rows,
)
from hpo.data.sources import Table, load_table
from hpo.data.splits import check_sizes, group_labels, holdout_split, infer_task, make_folds
from hpo.errors import DataError


@dataclass
class PreparedData:
    """The cleaned table, its split and folds, and what was done to get there.

    ``table.features`` holds the cleaned feature columns (``clean_features(raw, cleaning)``
    of the loaded rows); ``cleaning`` is the JSON spec that turns raw rows of the file
    into them at predict time.
    """

    table: Table
    task: str
    classes: list | None
    y: np.ndarray  # encoded target for every row of the table
    train_idx: np.ndarray  # non-test rows (positions in the table)
    test_idx: np.ndarray
    groups: np.ndarray | None
    trial_data: TrialData | None
    notes: list[str] = field(default_factory=list)
    cleaning: dict[str, Any] = field(default_factory=dict)
    quality: quality.QualityReport | None = None
    cv_strategy: str = "auto"
    positions: np.ndarray | None = None  # each table row's row number in the loaded data
    fold_preprocessors: list = field(default_factory=list)  # fitted, one per fold
    # regression: chosen on the non-test rows (data.target_transform)
    target_transform: target_transforms.TargetTransform = field(
        default_factory=target_transforms.TargetTransform
    )

    @property
    def features(self) -> pd.DataFrame:
        return self.table.features


def encode_target(target: pd.Series, task: str) -> tuple[np.ndarray, list | None]:
    """Class indices (classes sorted) for classification, float32 values for regression.
    Whole-number classes read as floats (a column with gaps) are labelled as integers."""
    if task == "classification":
        if pd.api.types.is_float_dtype(target) and np.array_equal(target, np.round(target)):
            target = target.astype(np.int64)
        classes = sorted(target.unique().tolist(), key=lambda v: (str(type(v)), v))
        lookup = {c: i for i, c in enumerate(classes)}
        return target.map(lookup).to_numpy(dtype=np.int64), classes
    return target.to_numpy(dtype=np.float32), None


def fit_fold(
    features: pd.DataFrame,
    y: np.ndarray,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    task: str,
    data_cfg,
    preprocessor=None,
    layout: list[str] | None = None,
    target_transform: str = "none",
) -> FoldArrays:
    """Fit preprocessing on ``train_rows`` alone (unless a fitted ``preprocessor`` is
    given) and transform both parts, into ``layout``'s columns if given; a regression
    target goes through ``target_transform`` and is standardized by the train part."""
    if preprocessor is None:
        preprocessor = fit_preprocessor(features.iloc[train_rows], data_cfg)
    X_train = transform_rows(preprocessor, features, train_rows, layout)
    X_val = transform_rows(preprocessor, features, val_rows, layout)
    y_train, y_val = y[train_rows], y[val_rows]
    y_mean, y_std = 0.0, 1.0
    if task != "regression":
        target_transform = "none"
    else:
        y_train = target_transforms.forward(target_transform, y_train)
        y_val = target_transforms.forward(target_transform, y_val)
        y_mean = float(y_train.mean())
        y_std = float(y_train.std()) or 1.0
        y_train = ((y_train - y_mean) / y_std).astype(np.float32)
        y_val = ((y_val - y_mean) / y_std).astype(np.float32)
    return FoldArrays(
        X_train, y_train, X_val, y_val, train_rows, val_rows, y_mean, y_std, target_transform
    )


def _take(table: Table, keep: np.ndarray) -> Table:
    return Table(
        table.features.loc[keep].reset_index(drop=True),
        table.target.loc[keep].reset_index(drop=True),
        table.name,
    )


@dataclass
class _Cleaned:
    table: Table
    positions: np.ndarray  # row numbers in the loaded data
    keep: np.ndarray  # which loaded rows were kept
    spec: dict[str, Any]
    dropped: set[str]


def _clean(table: Table, data_cfg, report: quality.QualityReport) -> _Cleaned:
    """Column rules, then row drops (missing target, exact duplicates); checks go into
    ``report``. Nothing here looks at a label's relation to the features."""
    target, target_findings = clean_target(table.target, data_cfg, data_cfg.task)
    spec, findings = plan_cleaning(table.features, data_cfg)
    cleaned = clean_features(table.features, spec)
    target_missing = target.isna().to_numpy()
    if target_missing.all():
        raise DataError(
            f"target column `{target.name}` has no values; choose another with data.target=COLUMN."
        )
    # Built-in datasets are used as published (so scores compare with the literature):
    # their checks are reported, but no row or column is dropped.
    as_published = data_cfg.source == "builtin"
    drop_ids = bool(data_cfg.drop_id_columns) and not as_published
    setting = duplicates_setting(data_cfg)

    def to_drop(drops: dict[str, dict[str, Any]]) -> set[str]:
        if as_published:
            return set()
        return {
            *drops["empty_columns"],
            *drops["constant_columns"],
            *(drops["id_columns"] if drop_ids else {}),
        }

    keep = ~target_missing
    drops = plan_drops(cleaned[keep], data_cfg)
    used = [c for c in cleaned.columns if c not in to_drop(drops)]
    # Duplicates are judged on the columns that stay (a row number would hide them all).
    duplicated = quality.duplicated_rows(cleaned[used], target) & keep
    with_target = cleaned.loc[keep, used].assign(**{"\0target": target[keep].to_numpy()})
    duplicates = decide(with_target, duplicated[keep], "false" if as_published else setting)
    if as_published and duplicates.found:
        duplicates.reason = "kept: built-in data is used as published"
    if duplicates.drop:
        keep = keep & ~duplicated
        # A customer id exported twice is unique once the copies are gone.
        more = plan_drops(cleaned.loc[keep, used], data_cfg)["id_columns"]
        drops["id_columns"].update(
            {c: f"{r} once duplicate rows are dropped" for c, r in more.items()}
        )
    dropped = to_drop(drops)
    spec = narrow_spec(spec, dropped)

    stray = dict(findings["stray_strings"])
    spellings = dict(findings["inconsistent_categories"])
    label = f"{target.name} (target)"
    if "stray_strings" in target_findings:
        stray[label] = target_findings["stray_strings"]
    if "inconsistent_categories" in target_findings:
        spellings[label] = target_findings["inconsistent_categories"]
    strays_in = {c: v["count"] for c, v in stray.items()}
    missing = {c: int(n) - strays_in.get(c, 0) for c, n in cleaned.isna().sum().items()}
    positions = np.arange(len(target))
    report.checks += [
        quality.missing_values(
            missing, int(target_missing.sum()) - strays_in.get(label, 0), str(target.name)
        ),
        quality.stray_strings(stray),
        quality.inconsistent_categories(spellings),
        *quality.dropped_columns(drops, drop_ids, as_published),
        quality.missing_target(positions[target_missing]),
        quality.duplicate_rows(positions[duplicated], duplicates),
    ]
    cleaned_table = _take(Table(cleaned[spec["columns"]], target, table.name), keep)
    if cleaned_table.features.shape[1] == 0:
        gone = "; ".join(
            f"{kind}: {listed(drops[key])}"
            for kind, key in [
                ("empty", "empty_columns"),
                ("constant", "constant_columns"),
                ("ID-like", "id_columns"),
            ]
            if set(drops[key]) & dropped
        )
        raise DataError(
            "no feature columns are left"
            + (f" (dropped {gone})" if gone else "")
            + "; check data.columns / data.drop_columns"
            + (", or set data.drop_id_columns=false" if drops["id_columns"] and drop_ids else "")
            + "."
        )
    return _Cleaned(cleaned_table, positions[keep], keep, spec, dropped)


def inspect_data(cfg, table: Table | None = None) -> PreparedData:
    """Load (unless given), clean, check and cut the test split; no folds yet.

    Raises:
        DataError / ConfigError: data that cannot be used as given, before any Ray work.
    """
    data_cfg = cfg.data
    check_options(data_cfg)
    table = table if table is not None else load_table(data_cfg)
    report = quality.QualityReport(
        source={
            "name": table.name,
            "source": data_cfg.source,
            "path": data_cfg.get("path"),
            "rows": len(table.target),
            "columns": table.features.shape[1] + 1,
            "target": str(table.target.name),
        }
    )
    group_column = data_cfg.get("group_column")
    raw_groups = None
    if group_column:
        if group_column not in table.features.columns:
            raise DataError(
                f"config key `data.group_column`: no column `{group_column}`; the columns "
                f"are: {listed(table.features.columns)}."
            )
        raw_groups = table.features[group_column]
        table = Table(table.features.drop(columns=[group_column]), table.target, table.name)
    cleaned = _clean(table, data_cfg, report)
    table, positions, spec, dropped = (
        cleaned.table,
        cleaned.positions,
        cleaned.spec,
        cleaned.dropped,
    )
    target = table.target
    notes: list[str] = []
    if (~cleaned.keep).any():
        notes.append(f"dropped {int((~cleaned.keep).sum())} rows (missing target, duplicates)")
    if raw_groups is not None:
        raw_groups = raw_groups[cleaned.keep].reset_index(drop=True)

    task = infer_task(table.target, data_cfg.task)
    y, classes = encode_target(table.target, task)
    if task == "classification" and len(classes) < 2:
        raise DataError(
            f"target column `{target.name}` holds one class only ({classes[0]!r}); a "
            "classifier needs at least two. Check data.target."
        )
    groups = group_labels(raw_groups, cfg) if raw_groups is not None else None
    strategy = cfg.cv.strategy
    if strategy == "auto":
        # A group column means: keep each group inside one fold.
        strategy = (
            "group" if groups is not None else "stratified" if task == "classification" else "kfold"
        )
    check_sizes(y, task, cfg, classes, groups)
    train_idx, test_idx = holdout_split(y, cfg.test_size, task, cfg.seed, groups)
    # decided on the non-test rows only, once for every fold, the refit and the baselines
    transform = target_transforms.choose(
        y[train_idx], data_cfg.get("target_transform", "auto"), task, str(target.name)
    )

    report.checks.append(
        quality.duplicates_across_split(table.features, y, train_idx, test_idx, positions)
    )
    report.checks.append(
        quality.leakage(
            table.features.iloc[train_idx],
            y[train_idx],
            task,
            float(data_cfg.get("leakage_threshold", 0.98)),
            int(cfg.seed),
        )
    )
    if task == "classification":
        report.checks.append(quality.class_imbalance(y, classes))
    report.result = {
        "task": task,
        "task_inferred": data_cfg.task == "auto",
        "classes": classes,
        "rows": len(y),
        "train_rows": len(train_idx),
        "test_rows": len(test_idx),
        "cv": {"folds": int(cfg.cv.folds), "strategy": strategy},
        "group_column": group_column,
        "groups": int(len(np.unique(groups))) if groups is not None else None,
        "numeric_columns": spec["numeric"],
        "categorical_columns": spec["categorical"],
        "dropped_columns": sorted(dropped),
        "target_transform": transform.record(),
    }
    return PreparedData(
        table=table,
        task=task,
        classes=classes,
        y=y,
        train_idx=train_idx,
        test_idx=test_idx,
        groups=groups,
        trial_data=None,
        notes=notes,
        cleaning=spec,
        quality=report,
        cv_strategy=strategy,
        positions=positions,
        target_transform=transform,
    )


def prepare_data(cfg, table: Table | None = None) -> PreparedData:
    """Load (unless given), clean, check, split, and preprocess each fold, as the config
    says. Each fold's preprocessing is fit on its train part only."""
    return build_folds(inspect_data(cfg, table), cfg)


def build_folds(prepared: PreparedData, cfg) -> PreparedData:
    """Cut the non-test rows into folds and preprocess each (``prepared.trial_data``)."""
    y, task = prepared.y, prepared.task
    rest = prepared.train_idx
    groups = prepared.groups
    fold_indices = make_folds(
        y[rest],
        prepared.cv_strategy,
        cfg.cv.folds,
        task,
        cfg.cv.shuffle,
        cfg.seed,
        groups[rest] if groups is not None else None,
    )
    features = prepared.features
    # Fit every fold first: their output columns can differ, the arrays share one layout.
    preprocessors = [fit_preprocessor(features.iloc[rest[tr]], cfg.data) for tr, _ in fold_indices]
    layout = merge_layouts([output_names(p) for p in preprocessors])
    folds = []
    for (tr, va), preprocessor in zip(fold_indices, preprocessors):
        fold = fit_fold(
            features,
            y,
            rest[tr],
            rest[va],
            task,
            cfg.data,
            preprocessor,
            layout,
            prepared.target_transform.name,
        )
        fold.train_rows, fold.val_rows = tr, va  # positions in the non-test rows
        folds.append(fold)
    output_dim = len(prepared.classes) if task == "classification" else 1
    prepared.trial_data = TrialData(
        folds, len(layout), output_dim, task, prepared.classes, feature_names=layout
    )
    prepared.fold_preprocessors = preprocessors
    return prepared

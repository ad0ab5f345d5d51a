"""Tables for the data tests: a clean one, and a customer table with the problems real
exports have (also by hand: `python tests/data/data_tables.py out.csv`)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd


def clean_frame(rows: int = 90, seed: int = 0) -> pd.DataFrame:
    """A table with no problem at all: two noisy numbers, a repeated integer, a category,
    and a balanced text target that no single column predicts well."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=rows)
    x2 = rng.normal(size=rows)
    signal = x1 + x2 + rng.normal(scale=1.0, size=rows)
    return pd.DataFrame(
        {
            "x1": x1,
            "x2": x2,
            "visits": rng.integers(0, 5, rows),
            "color": rng.choice(["red", "green", "blue"], rows),
            "label": np.where(signal > np.median(signal), "good", "bad"),
        }
    )


def write_table(frame: pd.DataFrame, path, fmt: str = "csv"):
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def messy_frame(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """Customers with: a saved pandas index and a customer id (ID-like), missing values
    (empty, NA, ?), stray strings in a numeric column, cities spelled several ways, a
    constant and an all-empty column, a column that leaks the target, exact duplicate
    rows, and a string target ("yes"/"no", some spelled " Yes")."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, rows).astype(object)
    income = np.round(rng.normal(40_000, 12_000, rows), 2).astype(object)
    city = rng.choice(["Paris", "London", "Berlin", "Madrid"], rows).astype(object)
    plan = rng.choice(["basic", "premium", "pro"], rows, p=[0.6, 0.3, 0.1]).astype(object)
    tenure = rng.integers(1, 60, rows)
    score = rng.normal(size=rows) + (plan == "basic") - tenure / 30
    churned = np.where(score > 0, "yes", "no").astype(object)
    age[rng.choice(rows, 12, replace=False)] = rng.choice(["", "NA", "?"], 12)
    income[rng.choice(rows, 6, replace=False)] = rng.choice(["unknown", "n/a ", "-"], 6)
    income[rng.choice(rows, 9, replace=False)] = ""
    for i, variant in zip(rng.choice(rows, 15, replace=False), [" Paris", "paris", "LONDON "] * 5):
        city[i] = variant
    plan[rng.choice(rows, 10, replace=False)] = np.nan
    refund = np.where(churned == "yes", "Y", "N")  # recorded after the customer left
    for i in rng.choice(rows, 8, replace=False):
        churned[i] = " Yes" if churned[i] == "yes" else "No "
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(rows)],
            "age": age,
            "income": income,
            "city": city,
            "plan": plan,
            "tenure_months": tenure,
            "country": "FR",
            "notes": np.nan,
            "refund_issued": refund,
            "churned": churned,
        }
    )
    frame.loc[rng.choice(rows, 4, replace=False), "churned"] = np.nan
    duplicates = frame.iloc[rng.choice(rows, 5, replace=False)]
    return pd.concat([frame, duplicates], ignore_index=True)


def write_messy_csv(path: str | Path, rows: int = 300, seed: int = 0) -> Path:
    """The messy table as a CSV, with the pandas index saved as an unnamed first column."""
    path = Path(path)
    messy_frame(rows, seed).to_csv(path, index=True)
    return path


def write_triglycerides_csv(path: str | Path) -> Path:
    """A real regression table with a positive, right-skewed target: scikit-learn's
    diabetes study unscaled, predicting serum triglycerides (``exp`` of its ``s5``, which
    sklearn documents as their log; skewness about 2) from the other measurements. ``s2``
    (LDL) is left out: it is computed from total cholesterol, HDL and triglycerides
    (Friedewald), which would make the target an exact linear function of the features."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(scaled=False, as_frame=True).frame
    triglycerides = np.exp(frame.pop("s5")).round(1)
    path = Path(path)
    frame.drop(columns=["s2"]).assign(triglycerides=triglycerides).to_csv(path, index=False)
    return path


if __name__ == "__main__":
    print(write_messy_csv(sys.argv[1] if len(sys.argv) > 1 else "messy.csv"))

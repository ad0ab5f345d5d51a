"""The sweep grammar <-> Optuna distribution translation, as a table (both directions)."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hpo.errors import SearchSpaceError
from hpo.space import (
    build_search_space,
    distribution_to_expression,
    grid_size,
    parse_expression,
    split_overrides,
)

TABLE = [
    ("choice(32, 64, 128)", CategoricalDistribution([32, 64, 128])),
    ("choice(relu, gelu)", CategoricalDistribution(["relu", "gelu"])),
    ("choice(true, false)", CategoricalDistribution([True, False])),
    ("choice(0.1, 0.5)", CategoricalDistribution([0.1, 0.5])),
    ("range(1, 4)", IntDistribution(1, 3)),
    ("range(0, 10, 2)", IntDistribution(0, 8, step=2)),
    ("range(5, 1, -1)", IntDistribution(2, 5)),
    ("range(0.0, 1.0, 0.25)", FloatDistribution(0.0, 0.75, step=0.25)),
    ("shuffle(range(1, 4))", CategoricalDistribution([1, 2, 3])),
    ("interval(0, 1)", FloatDistribution(0.0, 1.0)),
    ("interval(0.0, 0.5)", FloatDistribution(0.0, 0.5)),
    ("int(interval(1, 8))", IntDistribution(1, 8)),
    ("tag(log, interval(1e-4, 1e-1))", FloatDistribution(1e-4, 1e-1, log=True)),
    ("tag(log, int(interval(8, 256)))", IntDistribution(8, 256, log=True)),
]


@pytest.mark.parametrize(("expression", "expected"), TABLE)
def test_expression_to_distribution(expression, expected):
    assert parse_expression("k", expression) == expected


# shuffle() is a sampling order, not a distribution of its own: it comes back as choice().
ROUND_TRIP = [row for row in TABLE if not row[0].startswith("shuffle")]


@pytest.mark.parametrize(("expression", "expected"), ROUND_TRIP)
def test_distribution_round_trips_through_expression(expression, expected):
    assert parse_expression("k", distribution_to_expression(expected)) == expected


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("interval(2, 1)", "low <= high"),
        ("tag(log, interval(0, 1))", "low > 0"),
        ("tag(log, interval(-1, 1))", "low > 0"),
        ("range(4, 1)", "empty"),
        ("range(1, 4, 0)", "step"),
        ("foo(1, 2)", "Unknown function"),
        ("choice(", "cannot parse"),
        ("tag(exp, interval(1, 2))", "unknown tag"),
    ],
)
def test_malformed_expression_names_the_key(expression, fragment):
    with pytest.raises(SearchSpaceError) as info:
        parse_expression("optim.lr", expression)
    assert "optim.lr" in str(info.value)
    assert fragment in str(info.value)


def test_plain_value_is_not_a_distribution():
    assert parse_expression("k", "0.5") == 0.5
    assert parse_expression("k", 3) == 3


def test_range_stop_is_excluded_in_sampled_values():
    dist = parse_expression("model.num_layers", "range(1, 4)")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(200):
        trial = study.ask({"n": dist})
        seen.add(trial.params["n"])
        study.tell(trial, 0.0)
    assert seen == {1, 2, 3}


def test_split_overrides_separates_sweeps_from_plain_values():
    plain, sweeps = split_overrides(
        ["data=wine", "optim.lr=tag(log, interval(1e-4, 1e-2))", "model.hidden_dim=choice(8,16)"]
    )
    assert plain == ["data=wine"]
    assert sweeps == {
        "optim.lr": "tag(log, interval(1e-4, 1e-2))",
        "model.hidden_dim": "choice(8,16)",
    }


def test_cli_sweep_replaces_and_adds_keys():
    node = {"optim.lr": "interval(0.1, 0.2)", "model.dropout": "interval(0, 0.5)"}
    space, fixed = build_search_space(
        node, {"optim.lr": "choice(0.01)", "model.hidden_dim": "range(8, 10)"}
    )
    assert space["optim.lr"] == CategoricalDistribution([0.01])
    assert space["model.hidden_dim"] == IntDistribution(8, 9)
    assert space["model.dropout"] == FloatDistribution(0.0, 0.5)
    assert fixed == {}


def test_grid_size_counts_discrete_points_and_rejects_continuous():
    space, _ = build_search_space({"a": "choice(1, 2)", "b": "range(0, 3)"})
    assert grid_size(space) == 6
    continuous, _ = build_search_space({"a": "interval(0, 1)"})
    with pytest.raises(SearchSpaceError, match="searcher=grid"):
        grid_size(continuous)

"""Searcher x scheduler pairs in conf/ run a real (tiny) sweep to the end.

The default run covers every searcher (under ASHA; nsga2's sweep under ASHA is
tests/sweep/test_multi_objective.py), every scheduler (under TPE, or random
for PBT) and every pair refused before Ray: the representative set CI runs. Every pair
runs with ``HPO_TEST_ALL_PAIRS=1 python -m pytest tests/sweep/test_pairs.py`` (about 11
minutes on a shared 2-core machine)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from hpo.errors import ConfigError
from hpo.space import build_search_space
from hpo.sweep import run_sweep
from hpo.sweep.runner import check_before_ray

pytestmark = pytest.mark.slow

CONF = Path(__file__).resolve().parents[2] / "conf"
SEARCHERS = sorted(p.stem for p in (CONF / "searcher").glob("*.yaml"))
SCHEDULERS = sorted(p.stem for p in (CONF / "scheduler").glob("*.yaml"))
TINY = [
    "budget.num_samples=3",
    "budget.max_concurrent_trials=2",
    "trainer.max_epochs=3",
    "cv.folds=2",
    "searcher.n_startup_trials=1",
    "search_space.model.hidden_dim=choice(8, 16)",
    "search_space.model.activation=null",
]
# grid needs a finite space, which leaves PBT nothing continuous to explore
FINITE = [
    "search_space.optim.lr=choice(1e-3, 1e-2)",
    "search_space.optim.weight_decay=null",
    "search_space.model.dropout=null",
]
REFUSED = {(s, "pbt"): "scheduler=pbt draws" for s in SEARCHERS if s != "random"}
REFUSED |= {(s, "bohb"): "scheduler=bohb is TPE" for s in SEARCHERS if s != "tpe"}
# searchers whose sweep under ASHA another test runs (tests/sweep/test_multi_objective.py:
# nsga2 on two objectives, to the export), left out of CI's representative set here
COVERED_ELSEWHERE = {"nsga2"}


def chosen_pairs() -> list[tuple[str, str]]:
    every = list(itertools.product(SEARCHERS, SCHEDULERS))
    if os.environ.get("HPO_TEST_ALL_PAIRS") == "1":
        return every
    return [
        (searcher, scheduler)
        for searcher, scheduler in every
        if (searcher, scheduler) in REFUSED
        or (scheduler == "asha" and searcher not in COVERED_ELSEWHERE)
        or searcher == ("random" if scheduler == "pbt" else "tpe")
    ]


@pytest.mark.parametrize(("searcher", "scheduler"), chosen_pairs())
def test_pair_runs_a_sweep(ray_local, small_cfg, searcher, scheduler):
    overrides = [*TINY, *(FINITE if searcher == "grid" else []), f"searcher={searcher}"]
    if scheduler == "pbt":
        overrides.append("scheduler.perturbation_interval=1")
    if (searcher, scheduler) in REFUSED:  # refused before any Ray work, naming the fix
        with pytest.raises(ConfigError, match=REFUSED[searcher, scheduler]):
            cfg = small_cfg(f"scheduler={scheduler}", *overrides)
            space, _ = build_search_space(cfg.search_space)
            check_before_ray(cfg, space, "classification")
        return
    cfg = small_cfg(f"scheduler={scheduler}", *overrides)
    result = run_sweep(cfg, stream=None)
    assert sum(result.counts.values()) == 3 and result.counts["failed"] == 0
    assert result.best is not None
    if scheduler == "pbt":  # Ray runs PBT with no search algorithm: no study is kept
        assert result.study is None
        return
    study = result.study
    assert len(study.trials) == 3 and all(t.state.is_finished() for t in study.trials)

"""The simulated benchmark: real searchers and schedulers against recorded learning curves.

A run proposes configurations with a method's real objects (hpo's StudySearcher and its
own rungs from hpo.sweep.factories, Ray's ASHAScheduler and OptunaSearch, Optuna's
TPESampler with its HyperbandPruner, ...), called through their public interfaces
without Ray running. Each proposed configuration is answered from the recorded curves
(benchmarks.record_curves: real hpo trials, one per configuration, trained to their own
early stopping) by a responder of benchmarks.surrogate: the *nearest recorded curve*, or a
forest fitted to all of them with fold-spread noise; each epoch is charged the nearest
curve's recorded wall seconds. ``workers`` slots run trials at once; results reach the method
in the order they would finish (asynchronous completion by recorded times), and the run
ends when its trial-epoch budget is spent.

How faithful it is (benchmarks.replay_report prints the figures):

* the answer to a configuration is a recorded real trial, but the nearest one in the
  space (log scale for log keys, each key scaled to [0, 1], a categorical counting 1 when
  it differs), so a method can do no better than the best recorded curve; the regret is
  measured against that curve. ``lookup_fidelity`` gives the leave-one-out rank
  correlation between a curve's best value and its nearest neighbour's;
* Tune's own latency (actor start, the driver loop, checkpoints) is not charged: the
  simulated time is the trials' own time, the ideal that benchmarks.throughput measures
  the real sweep against;
* Tune's order of calls is kept: the scheduler judges a result first; the searcher gets
  ``on_trial_result`` unless the scheduler stopped the trial, then ``on_trial_complete``
  with the last result (trial_finished set when the trial ended by itself).
"""

from __future__ import annotations

import heapq
import math
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState
from ray.tune.schedulers import TrialScheduler

from hpo.space import SearchSpace
from hpo.train.trial import FINISHED_KEY


@dataclass
class Curves:
    """One task's recorded curves.

    Attributes:
        task, metric, mode: what was recorded and which way is better.
        space: the task's search space (the lookup scales keys by it).
        params: one dict per curve.
        values, times: per curve, the metric and the wall seconds of each epoch.
    """

    task: str
    metric: str
    mode: str
    space: SearchSpace
    params: list[dict[str, Any]]
    values: list[np.ndarray]
    times: list[np.ndarray]

    def __post_init__(self) -> None:
        self.points = np.stack([self.encode(p) for p in self.params])
        bests = [self.curve_best(i) for i in range(len(self.values))]
        self.best = min(bests) if self.mode == "min" else max(bests)
        # The scale of the regret: the median curve's best value is 1 from the best curve.
        self.scale = abs(float(np.median(bests)) - self.best) or 1.0

    @classmethod
    def from_table(cls, table: pd.DataFrame, metric: str, mode: str, space: SearchSpace):
        """From benchmarks.record_curves' rows of one task."""
        params, values, times = [], [], []
        for _, rows in table.sort_values(["trial", "epoch"]).groupby("trial", sort=True):
            first = rows.iloc[0]
            params.append({key: _plain(first[key]) for key in space})
            values.append(rows["value"].to_numpy(dtype=float))
            times.append(rows["epoch_s"].to_numpy(dtype=float))
        return cls(str(table["task"].iloc[0]), metric, mode, space, params, values, times)

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        coords = []
        for key, dist in self.space.items():
            value = params[key]
            if isinstance(dist, CategoricalDistribution):
                coords.extend(float(value == choice) / math.sqrt(2) for choice in dist.choices)
                continue
            low, high, value = float(dist.low), float(dist.high), float(value)
            if dist.log:
                low, high, value = math.log(low), math.log(high), math.log(value)
            coords.append((value - low) / (high - low) if high > low else 0.0)
        return np.asarray(coords)

    def nearest(self, params: Mapping[str, Any], exclude: int | None = None) -> int:
        distances = ((self.points - self.encode(params)) ** 2).sum(axis=1)
        if exclude is not None:
            distances[exclude] = np.inf
        return int(np.argmin(distances))

    def curve_best(self, index: int) -> float:
        finite = self.values[index][np.isfinite(self.values[index])]
        if finite.size == 0:
            return math.inf if self.mode == "min" else -math.inf
        return float(finite.min() if self.mode == "min" else finite.max())

    def regret(self, value: float) -> float:
        """How far ``value`` is from the best recorded one, in units of ``scale``."""
        if not math.isfinite(value):
            return math.inf
        gap = value - self.best if self.mode == "min" else self.best - value
        return max(0.0, gap) / self.scale


def lookup_fidelity(curves: Curves) -> float:
    """Leave-one-out Spearman correlation between each curve's best value and that of its
    nearest other curve: how well the lookup answers a configuration it never saw."""
    own, neighbour = [], []
    for index, params in enumerate(curves.params):
        other = curves.nearest(params, exclude=index)
        own.append(curves.curve_best(index))
        neighbour.append(curves.curve_best(other))
    frame = pd.DataFrame({"own": own, "neighbour": neighbour}).replace([np.inf, -np.inf], np.nan)
    return float(frame.corr(method="spearman").iloc[0, 1])


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class TuneEngine:
    """A Ray Tune searcher and scheduler, called as Tune's controller calls them."""

    def __init__(self, searcher, scheduler) -> None:
        self.searcher, self.scheduler = searcher, scheduler

    def start(self, key: str) -> dict[str, Any] | None:
        params = self.searcher.suggest(key)
        if params is None:
            return None
        self.scheduler.on_trial_add(None, SimpleNamespace(trial_id=key))
        return flatten(params)

    def result(self, key: str, report: dict[str, Any], ends: bool) -> bool:
        """Tell one epoch's report; False when the trial stops here."""
        trial = SimpleNamespace(trial_id=key)
        decision = self.scheduler.on_trial_result(None, trial, report)
        stop = decision == TrialScheduler.STOP
        if not stop:
            self.searcher.on_trial_result(key, report)
        if stop or ends:
            self.scheduler.on_trial_complete(None, trial, report)
            self.searcher.on_trial_complete(key, report)
        return not stop

    def close(self) -> None:
        pass


class OptunaEngine:
    """Native Optuna: ask a trial, report each epoch, prune when the pruner says so; the
    value told is the trial's best epoch (as hpo's bridge tells it)."""

    def __init__(self, study: optuna.Study, space: SearchSpace) -> None:
        self.study, self.space = study, dict(space)
        self.trials: dict[str, optuna.Trial] = {}
        self.best: dict[str, float] = {}

    def start(self, key: str) -> dict[str, Any]:
        trial = self.study.ask(fixed_distributions=self.space)
        self.trials[key] = trial
        return dict(trial.params)

    def result(self, key: str, report: dict[str, Any], ends: bool) -> bool:
        trial, value = self.trials[key], float(report["value"])
        if not math.isfinite(value):
            self.study.tell(trial, state=TrialState.FAIL)
            return False
        better = min if self.study.direction.name == "MINIMIZE" else max
        self.best[key] = better(self.best.get(key, value), value)
        trial.report(value, int(report["epoch"]))
        if ends:
            self.study.tell(trial, self.best[key])
            return True
        if trial.should_prune():
            self.study.tell(trial, state=TrialState.PRUNED)
            return False
        return True

    def close(self) -> None:
        pass


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys (Ray's OptunaSearch returns the dotted keys nested)."""
    flat = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def simulate(
    curves: Curves,
    engine,
    epoch_budget: int,
    workers: int,
    overhead_s: float = 0.0,
    responder=None,
    seed: int = 0,
) -> pd.DataFrame:
    """One run: ``workers`` slots, each epoch finishing after its recorded seconds, until
    ``epoch_budget`` trial-epochs are spent (or the method proposes nothing more).

    ``responder`` answers each proposed configuration (benchmarks.surrogate: the nearest
    recorded curve, the default here, or the forest surrogate, whose noise ``seed`` draws).
    Returns one row per report in the order the driver gets them: ``time_s`` (simulated
    seconds), ``cum_epochs``, ``trial``, ``curve`` (the nearest recorded curve), ``epoch``,
    ``value`` (what the method saw), ``best_so_far`` (the best seen) and ``regret`` (of the
    true value of the report the best seen came from).
    """
    from benchmarks.surrogate import NearestCurve

    responder = responder or NearestCurve(curves)
    rng = np.random.default_rng(seed)
    events: list[tuple[float, int, str]] = []
    running: dict[str, list] = {}  # key -> [answer, epochs done]
    rows: list[dict[str, Any]] = []
    counter = {"trials": 0, "seq": 0}

    def launch(now: float) -> None:
        key = f"t{counter['trials']:05d}"
        params = engine.start(key)
        if params is None:
            return
        counter["trials"] += 1
        answer = responder.answer(params, rng)
        running[key] = [answer, 0]
        push(now + overhead_s + answer.times[0], key)

    def push(when: float, key: str) -> None:
        counter["seq"] += 1
        heapq.heappush(events, (when, counter["seq"], key))

    for _ in range(workers):
        launch(0.0)
    best, regret = math.nan, math.inf
    better = (lambda a, b: a < b) if curves.mode == "min" else (lambda a, b: a > b)
    while events and len(rows) < epoch_budget:
        now, _, key = heapq.heappop(events)
        answer, done = running[key]
        value = float(answer.observed[done])
        epoch = done + 1
        ends = epoch == len(answer.observed)
        report = {
            curves.metric: value,
            "value": value,
            "epoch": epoch,
            "training_iteration": epoch,
            FINISHED_KEY: ends,
        }
        if math.isfinite(value) and (math.isnan(best) or better(value, best)):
            best, regret = value, responder.regret(float(answer.truth[done]))
        rows.append(
            {
                "time_s": now,
                "cum_epochs": len(rows) + 1,
                "trial": key,
                "curve": answer.curve,
                "epoch": epoch,
                "value": value,
                "best_so_far": best,
                "regret": regret,
            }
        )
        goes_on = engine.result(key, report, ends)
        if len(rows) >= epoch_budget:
            break
        if ends or not goes_on:
            del running[key]
            launch(now)
        else:
            running[key][1] = epoch
            push(now + answer.times[epoch], key)
    engine.close()
    return pd.DataFrame(rows)


# (cfg, space, workers, journal) -> engine. cfg: the task's composed config with the
# method's overrides and the run's seed.
EngineFactory = Callable[[Any, SearchSpace, int, Path], Any]


def hpo_engine(cfg, space: SearchSpace, workers: int, journal: Path) -> TuneEngine:
    """hpo's searcher and scheduler, from the same factories as ``hpo sweep``."""
    from hpo.sweep.factories import make_scheduler, make_searcher

    return TuneEngine(make_searcher(cfg, space, workers, journal), make_scheduler(cfg, space))


def ray_stock_engine(cfg, space: SearchSpace, workers: int, journal: Path) -> TuneEngine:
    """Ray Tune as its docs show it: ASHAScheduler and OptunaSearch with their defaults
    (grace period 1, reduction factor 4; Optuna's default TPE), max_t the task's epochs."""
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    np.random.seed(int(cfg.seed))  # ASHAScheduler draws brackets from numpy's global RNG
    scheduler = ASHAScheduler(
        time_attr="training_iteration",
        metric=cfg.metric,
        mode=cfg.mode,
        max_t=int(cfg.scheduler.max_t),
    )
    searcher = OptunaSearch(space=dict(space), metric=cfg.metric, mode=cfg.mode, seed=int(cfg.seed))
    return TuneEngine(searcher, scheduler)


def optuna_native_engine(cfg, space: SearchSpace, workers: int, journal: Path) -> OptunaEngine:
    """Optuna alone: hpo's TPE settings and Optuna's HyperbandPruner on hpo's rungs."""
    from benchmarks.native_optuna import make_pruner
    from hpo.sweep.factories import make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize" if cfg.mode == "min" else "maximize",
        sampler=make_sampler(cfg, space, concurrent=workers),
        pruner=make_pruner(cfg),
    )
    return OptunaEngine(study, space)


@dataclass(frozen=True)
class ReplayMethod:
    """A method of the simulated comparison: overrides on the task's config, and how its
    searcher and scheduler are built from that config."""

    name: str
    label: str
    overrides: tuple[str, ...] = ()
    engine: EngineFactory = hpo_engine


DEFAULT = "asha_tpe"
RANDOM_BASELINE = "fifo_random"
REFERENCES = ("ray_stock", "optuna_native")  # what the default must beat

REPLAY_METHODS: dict[str, ReplayMethod] = {
    m.name: m
    for m in (
        ReplayMethod("asha_tpe", "hpo default: ASHA + TPE, fidelity bridge"),
        ReplayMethod(
            "ray_stock", "Ray stock: ASHAScheduler + OptunaSearch", engine=ray_stock_engine
        ),
        ReplayMethod(
            "asha_tpe_stock",
            "hpo's ASHA + TPE through Ray's OptunaSearch",
            ("searcher.bridge=stock",),
        ),
        ReplayMethod(
            "optuna_native", "Optuna TPE + HyperbandPruner (native)", engine=optuna_native_engine
        ),
        ReplayMethod("bohb_tpe", "Hyperband brackets + TPE (scheduler=bohb)", ("scheduler=bohb",)),
        ReplayMethod("median_tpe", "median stopping + TPE", ("scheduler=median",)),
        ReplayMethod("asha_random", "ASHA + random", ("searcher=random",)),
        # hpo's ASHA + TPE with one setting changed (candidate defaults, the former one)
        ReplayMethod(
            "asha_tpe_startup20",
            "ASHA + TPE, 20 start-up trials",
            ("searcher.n_startup_trials=20",),
        ),
        ReplayMethod(
            "asha_tpe_multivariate",
            "ASHA + multivariate TPE (the default before this comparison)",
            ("searcher.multivariate=true",),
        ),
        ReplayMethod("fifo_tpe", "FIFO + TPE", ("scheduler=fifo",)),
        ReplayMethod("fifo_random", "FIFO + random", ("searcher=random", "scheduler=fifo")),
    )
}


def run_replay(
    curves: Curves, method: ReplayMethod, cfg, epoch_budget: int, workers: int, responder=None
):
    """One simulated run of ``method`` (``cfg``: the task's config with the method's
    overrides and the run's seed, which also seeds the surrogate's noise); its report rows."""
    # The study's journal fsyncs every write: in memory (tmpfs) where there is one.
    memory = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="hpo-replay-", dir=memory) as directory:
        engine = method.engine(cfg, curves.space, workers, Path(directory) / "journal.log")
        return simulate(
            curves, engine, epoch_budget, workers, responder=responder, seed=int(cfg.seed)
        )

"""The methods of the comparison, as data: each is a set of hpo overrides run through
Ray Tune, or a baseline function. Adding a method is one entry in METHODS."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from omegaconf import DictConfig

from benchmarks.anytime import AnytimeLog
from benchmarks.native_optuna import run_native_optuna
from benchmarks.tune_backend import run_with_ray_tune

# (objective, cfg, log, n_workers) -> the filled log
Runner = Callable[[object, DictConfig, AnytimeLog, int], AnytimeLog]


@dataclass(frozen=True)
class Method:
    """A search strategy.

    Attributes:
        name: the method's name in every result row.
        label: what it is, for tables and plots.
        overrides: hpo overrides that select it (on top of the task's).
        baseline: a function that runs it instead of Ray Tune (None: Ray Tune through
            hpo's searcher and scheduler factories).
    """

    name: str
    label: str
    overrides: tuple[str, ...] = ()
    baseline: Runner | None = None

    def run(self, objective, cfg: DictConfig, log: AnytimeLog, n_workers: int) -> AnytimeLog:
        runner = self.baseline or run_with_ray_tune
        return runner(objective, cfg, log, n_workers)


DEFAULT = "asha_tpe"  # hpo's default: ASHA + TPE through the fidelity-aware bridge
RANDOM_BASELINE = "fifo_random"  # the target of time-to-target

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("asha_tpe", "ASHA + TPE, fidelity bridge (default)"),
        Method(
            "asha_tpe_stock", "ASHA + TPE, Ray's stock OptunaSearch", ("searcher.bridge=stock",)
        ),
        Method("asha_random", "ASHA + random", ("searcher=random",)),
        Method(
            "asha_tpe_multivariate",
            "ASHA + multivariate TPE (the former default)",
            ("searcher.multivariate=true",),
        ),
        Method("fifo_tpe", "FIFO + TPE", ("scheduler=fifo",)),
        Method("fifo_random", "FIFO + random", ("searcher=random", "scheduler=fifo")),
        Method("hyperband_tpe", "HyperBand + TPE", ("scheduler=hyperband",)),
        Method(
            "optuna_native", "Optuna TPE + HyperbandPruner (native)", baseline=run_native_optuna
        ),
    )
}

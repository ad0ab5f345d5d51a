"""One Sweep for ``hpo sweep``, ``hpo resume`` and the benchmarks.

A Sweep is a trainable, a searcher and a scheduler (from the config's factories), the
driver's callbacks and an optional stopper; ``run()`` starts it and ``run(resume=True)``
finishes an interrupted one from its experiment folder. Both go through Ray Tune's
public ``tune.run`` (what ``Tuner.fit`` calls too), so a resumed sweep gets this
process's searcher, scheduler and callbacks, not copies unpickled from the first run:
the search state comes back from hpo's own files (the Optuna study's journal, the rungs
in the callback state), not from another library's private attributes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from ray import tune
from ray.tune import ResumeConfig, Stopper

from hpo.space import SearchSpace
from hpo.sweep.buffering import buffered_trainable, buffers_results, result_buffering
from hpo.sweep.factories import make_scheduler, make_searcher, tune_space
from hpo.sweep.optuna_bridge import StudySearcher
from hpo.sweep.recorder import TrialRecorder
from hpo.sweep.relocate import relocating
from hpo.sweep.storage import TUNE_DIR

FINISHED_STATES = ("TERMINATED", "ERROR")


def trial_dirname(trial) -> str:
    """Short trial folders (Ray's default name lists every hyperparameter)."""
    return f"trial_{trial.trial_id}"


@dataclass
class Sweep:
    """Everything one Ray Tune run needs.

    Attributes:
        trainable: the trial function with its data and resources bound.
        metric, mode: what the trials report and which way is better.
        searcher, scheduler: from hpo.sweep.factories.
        storage_path: where Tune's experiment folder (``name``) goes.
        num_samples: the trial budget (an upper bound when a stopper ends the run).
        max_concurrent: at most this many trials at once (None: what fits).
        callbacks: the driver's Tune callbacks (a resumed sweep passes the same list).
        stopper: ends the run early (e.g. the benchmarks' epoch budget).
        time_budget_s, max_failures: as ``TuneConfig`` / ``FailureConfig`` mean them.
    """

    trainable: Any
    metric: str
    mode: str
    searcher: Any
    scheduler: Any
    storage_path: str
    num_samples: int
    max_concurrent: int | None = None
    callbacks: list = field(default_factory=list)
    stopper: Stopper | None = None
    time_budget_s: float | None = None
    max_failures: int = 0
    name: str = TUNE_DIR
    param_space: dict | None = None  # Tune domains, for a searcher that samples them
    # Checkpoints each trial keeps: PBT clones another trial's checkpoint, which must still
    # be there (None: all), the other schedulers need only the latest.
    keep_checkpoints: int | None = 1

    @classmethod
    def from_config(
        cls,
        cfg: DictConfig,
        space: SearchSpace,
        trainable,
        storage_path: str,
        journal: str | Path,
        num_samples: int,
        concurrent: int | None,
        **extra,
    ) -> Sweep:
        """The config's searcher (its study in ``journal``) and scheduler, around
        ``trainable``; ``extra``: callbacks, stopper, ... as the attributes say."""
        if cfg.scheduler.name == "pbt":
            extra.setdefault("param_space", tune_space(space))
            extra.setdefault("keep_checkpoints", None)
        scheduler = make_scheduler(cfg, space)
        return cls(
            # epoch results in batches, the scheduler's epochs at once (hpo.sweep.buffering)
            trainable=buffered_trainable(trainable, scheduler, cfg.trainer.result_buffer_s),
            metric=cfg.metric,
            mode=cfg.mode,
            searcher=make_searcher(cfg, space, concurrent, journal),
            scheduler=scheduler,
            storage_path=storage_path,
            num_samples=num_samples,
            max_concurrent=concurrent,
            time_budget_s=cfg.budget.time_budget_s,
            max_failures=int(cfg.budget.max_retries),
            **extra,
        )

    def run(self, resume: bool = False) -> list:
        """Run (or, with ``resume``, finish) the sweep; returns Tune's trials.

        A resumed sweep keeps finished and failed trials as they are and continues
        unfinished ones from their last checkpoint.
        """
        # a moved or copied run directory resumes in its new place (hpo.sweep.relocate);
        # the concurrency cap is then applied there
        search_alg = relocating(self.searcher, self.storage_path, self.name, self.max_concurrent)
        with (
            result_buffering(buffers_results(self.trainable)),
            flushed(self.searcher, *self.callbacks),  # (hpo's own: what they hold back)
        ):
            analysis = tune.run(
                self.trainable,
                name=self.name,
                storage_path=self.storage_path,
                metric=self.metric,
                mode=self.mode,
                config=self.param_space,
                search_alg=search_alg,
                scheduler=self.scheduler,
                num_samples=self.num_samples,
                max_concurrent_trials=None
                if search_alg is not self.searcher
                else self.max_concurrent,
                time_budget_s=self.time_budget_s,
                stop=self.stopper,
                callbacks=self.callbacks,
                reuse_actors=True,
                trial_dirname_creator=trial_dirname,
                # num_to_keep=1 also makes Tune snapshot the experiment after every trial
                # checkpoint, so a killed driver loses at most the epoch in flight (the
                # snapshot can lag the deletion of the previous checkpoint by a moment:
                # hpo.sweep.resume.repair_snapshot_checkpoints covers that).
                checkpoint_config=tune.CheckpointConfig(num_to_keep=self.keep_checkpoints),
                max_failures=self.max_failures,
                raise_on_failed_trial=False,
                verbose=0,
                resume_config=ResumeConfig() if resume else None,
            )
        return list(analysis.trials)


@contextmanager
def flushed(*writers) -> Iterator[None]:
    """What the searcher and the callbacks hold back written out when the run ends,
    however it ends (the study's journal: hpo.sweep.journal; trials.jsonl's epoch rows:
    hpo.sweep.recorder)."""
    try:
        yield
    finally:
        for writer in writers:
            if isinstance(writer, (StudySearcher, TrialRecorder)):  # not another's flush()
                writer.flush()

"""Ray Tune's searcher over an Optuna study that lives in the run directory.

The study is the search state: it sits in a JournalStorage file in the run directory
(``optuna_journal.log``), so ``hpo resume`` reopens it with ``optuna.load_study`` and
``optuna-dashboard optuna_journal.log`` shows the sweep live. Every Optuna trial carries
its Tune trial id as a user attribute, so the searcher holds nothing that the study
does not (as Optuna's own pruners hold only their settings). Only public seams are
used: Tune's ``Searcher`` interface, ``study.ask`` / ``study.tell`` and the storage's
public methods.

What each Tune outcome becomes in the study:

* a trial that ended by itself (its last result carries ``trial_finished=True``) is
  COMPLETE with its best epoch's value, the value the sweep ranks trials by;
* a trial stopped by the scheduler: every epoch it ran is an intermediate value, then
  ``searcher.stopped_as`` decides what the sampler learns from it (hpo.sweep.fidelity):
  ``pruned`` (TPE ranks pruned trials by the step they reached and their value; CMA-ES
  with ``consider_pruned_trials``), or ``imputed``: COMPLETE with its last value moved by
  the typical gain of trials that went on from that epoch (for GP, which learns only
  from COMPLETE trials);
* a failed or diverged trial (error, NaN/inf) is FAIL.

With several objectives (``metric=[val_accuracy,latency_ms] mode=[max,min]``,
hpo.config.objectives) the study has one direction each and a COMPLETE trial is told
its vector of values at its best epoch by the first objective (the row the export
ranks it by, hpo.export.pareto). Optuna keeps intermediate values for one objective
only (``Trial.report`` refuses multi-objective trials, and TPE ranks pruned trials by
them through ``study.direction``), so each epoch's vector goes into the trial's user
attribute ``hpo_values`` instead; a stopped trial is PRUNED, or with ``imputed``
COMPLETE with its first objective lifted as above and its other values as it last
reported them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from ray.tune.search import Searcher

from hpo.rundir import JOURNAL
from hpo.sweep.fidelity import imputed_value, lifted_value
from hpo.sweep.journal import BatchedJournal
from hpo.train.trial import FINISHED_KEY

JOURNAL_FILE = JOURNAL
STUDY_NAME = "hpo"
TUNE_ID_ATTR = "tune_trial_id"
STATUS_ATTR = "hpo_status"  # completed | stopped | failed | orphan: what the trial really did
STOPPED_AS = ("pruned", "imputed")
VALUES_ATTR = "hpo_values"  # multi-objective: epoch -> [value of each objective]


def journal_storage(path: str | Path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(path)))


def load_run_study(path: str | Path, sampler=None) -> optuna.Study:
    """The study of a run (``RUN_DIR/optuna_journal.log``), as ``optuna.load_study`` opens it."""
    return optuna.load_study(study_name=STUDY_NAME, storage=journal_storage(path), sampler=sampler)


class StudySearcher(Searcher):
    """Ray Tune ``Searcher`` that asks and tells an Optuna study in a journal file.

    Args:
        space: key -> Optuna distribution (hpo.space).
        metric, mode: what the trials report and which way is better.
        sampler: the Optuna sampler (hpo.sweep.runner.make_sampler).
        journal: the JournalStorage file; the study is created, or loaded if it exists.
        stopped_as: ``pruned`` or ``imputed`` (see the module docstring).
        objectives: ``[(metric, mode), ...]`` for a multi-objective study (the first is
            ``metric`` / ``mode``); None: the one objective ``metric`` / ``mode``.
    """

    def __init__(
        self,
        space: dict[str, Any],
        metric: str,
        mode: str,
        sampler: optuna.samplers.BaseSampler,
        journal: str | Path,
        stopped_as: str = "pruned",
        objectives: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self.objectives = list(objectives or [(metric, mode)])
        self.space = dict(space)
        self.sampler = sampler
        self.journal = Path(journal)
        self.stopped_as = stopped_as
        self._study: optuna.Study | None = None
        self._storage: JournalStorage | None = None
        self.backend: BatchedJournal | None = None
        self._numbers: dict[str, int] = {}  # Tune trial id -> Optuna trial number
        self._ids: dict[int, int] = {}  # Optuna trial number -> its storage id
        self._finished: set[int] = set()  # numbers of the trials no longer RUNNING

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its searcher; the study is the journal file, reopened on use.
        self.flush()
        return {
            **self.__dict__,
            "_study": None,
            "_storage": None,
            "backend": None,
            "_numbers": {},
            "_ids": {},
            "_finished": set(),
        }

    @property
    def study(self) -> optuna.Study:
        """The run's study (opened on first use: created, or loaded from the journal)."""
        if self._study is None:
            existing = self.journal.is_file() and self.journal.stat().st_size > 0
            # the study's changes are written in batches (hpo.sweep.journal): this driver
            # is the journal's only writer while it holds the run directory
            self.backend = BatchedJournal(self.journal)  # (creates the file)
            self._storage = JournalStorage(self.backend)
            if existing:
                self._study = optuna.load_study(
                    study_name=STUDY_NAME, storage=self._storage, sampler=self.sampler
                )
            else:
                self._study = optuna.create_study(
                    study_name=STUDY_NAME,
                    storage=self._storage,
                    sampler=self.sampler,
                    directions=[
                        "minimize" if mode == "min" else "maximize" for _, mode in self.objectives
                    ],
                )
            trials = self._study.get_trials(deepcopy=False)
            self._numbers = {
                t.user_attrs[TUNE_ID_ATTR]: t.number for t in trials if TUNE_ID_ATTR in t.user_attrs
            }
            self._finished = {t.number for t in trials if t.state != TrialState.RUNNING}
        return self._study

    def flush(self) -> None:
        """Write the study's waiting changes to the journal file (hpo.sweep.journal)."""
        if self.backend is not None:
            self.backend.flush()

    def _running(self, trial_id: str) -> tuple[int, int] | None:
        """(number, storage id) of the Tune trial's Optuna trial while it runs; None once
        it is finished (e.g. told just before a driver was killed) or unknown. Read from
        what this searcher knows, as the journal's only writer: no file read per result."""
        self.study  # noqa: B018 (opens the study: the numbers and finished trials)
        number = self._numbers.get(trial_id)
        if number is None or number in self._finished:
            return None
        if number not in self._ids:
            study_id = self._storage.get_study_id_from_name(STUDY_NAME)
            self._ids[number] = self._storage.get_trial_id_from_study_id_trial_number(
                study_id, number
            )
        return number, self._ids[number]

    def _tell(self, number: int, *args, **kwargs) -> None:
        try:
            self.study.tell(number, *args, **kwargs)
        finally:
            self._finished.add(number)
            self.flush()

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        trial = self.study.ask(self.space)
        trial.set_user_attr(TUNE_ID_ATTR, trial_id)
        self._numbers[trial_id] = trial.number
        self.flush()  # the new trial is in the file before Tune snapshots it
        return dict(trial.params)  # dotted keys, as hpo.train.trial.apply_params takes them

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self.multi:
            self._record_values(trial_id, result)
            return
        value, step = result.get(self.metric), result.get("epoch")
        if value is None or step is None or not math.isfinite(value):
            return
        running = self._running(trial_id)
        if running is not None:
            self._storage.set_trial_intermediate_value(running[1], int(step), float(value))
            if self.backend.flush_due():
                self.flush()

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        running = self._running(trial_id)
        if running is None:
            return
        number, storage_id = running
        if self.multi:
            self._complete_multi(trial_id, number, storage_id, result, error)
            return
        value = result.get(self.metric) if result else None
        if error or value is None or not math.isfinite(value):
            self._storage.set_trial_user_attr(storage_id, STATUS_ATTR, "failed")
            self._tell(number, state=TrialState.FAIL)
            return
        # Tune gives no on_trial_result for the result that made the scheduler stop it.
        self.on_trial_result(trial_id, result)
        frozen = self.study.get_trials(deepcopy=False)[number]
        values = list(frozen.intermediate_values.values()) or [float(value)]
        if result.get(FINISHED_KEY):
            self._storage.set_trial_user_attr(storage_id, STATUS_ATTR, "completed")
            self._tell(number, min(values) if self.mode == "min" else max(values))
            return
        self._storage.set_trial_user_attr(storage_id, STATUS_ATTR, "stopped")
        if self.stopped_as == "imputed":
            self._tell(number, imputed_value(self.study, frozen, STATUS_ATTR))
        else:
            self._tell(number, state=TrialState.PRUNED)

    def _values(self, result: dict | None) -> list[float] | None:
        """The objectives' values in ``result``; None when one is missing or not finite."""
        values = [(result or {}).get(metric) for metric, _ in self.objectives]
        if any(not isinstance(v, (int, float)) or not math.isfinite(v) for v in values):
            return None
        return [float(v) for v in values]

    def _record_values(self, trial_id: str, result: dict) -> None:
        values, step = self._values(result), result.get("epoch")
        running = self._running(trial_id)
        if values is None or step is None or running is None:
            return
        curve = dict(
            self.study.get_trials(deepcopy=False)[running[0]].user_attrs.get(VALUES_ATTR, {})
        )
        curve[str(int(step))] = values
        self._storage.set_trial_user_attr(running[1], VALUES_ATTR, curve)

    def _complete_multi(self, trial_id, number, storage_id, result, error) -> None:
        values = None if error else self._values(result)
        if values is None:
            self._storage.set_trial_user_attr(storage_id, STATUS_ATTR, "failed")
            self._tell(number, state=TrialState.FAIL)
            return
        self._record_values(trial_id, result)
        curve = self.study.get_trials(deepcopy=False)[number].user_attrs.get(VALUES_ATTR, {})
        sign = 1.0 if self.mode == "max" else -1.0
        best = max(curve.values(), key=lambda v: sign * v[0]) if curve else values
        if result.get(FINISHED_KEY):
            self._storage.set_trial_user_attr(storage_id, STATUS_ATTR, "completed")
            self._tell(number, best)
            return
        self._storage.set_trial_user_attr(storage_id, STATUS_ATTR, "stopped")
        if self.stopped_as == "pruned":
            self._tell(number, state=TrialState.PRUNED)
            return
        firsts = {int(e): v[0] for e, v in curve.items()} or {0: values[0]}
        completed = [
            ({int(e): v[0] for e, v in t.user_attrs.get(VALUES_ATTR, {}).items()}, t.values[0])
            for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get(STATUS_ATTR) == "completed"
        ]
        self._tell(number, [lifted_value(firsts, completed), *values[1:]])

    # Tune saves this with every experiment snapshot: the Tune trials it knew then.
    def save(self, checkpoint_path: str) -> None:
        self.flush()  # the journal is at least as new as Tune's snapshot
        known = [t.user_attrs.get(TUNE_ID_ATTR) for t in self.study.get_trials(deepcopy=False)]
        Path(checkpoint_path).write_text(json.dumps({"tune_trials": known}))

    def restore(self, checkpoint_path: str) -> None:
        """On resume: trials asked after Tune's last snapshot never ran and never will
        (Tune does not know them); they are told FAIL, marked ``orphan``."""
        known = set(json.loads(Path(checkpoint_path).read_text())["tune_trials"])
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            trial_id = frozen.user_attrs.get(TUNE_ID_ATTR)
            if trial_id not in known:
                _, storage_id = self._running(trial_id)
                self._storage.set_trial_user_attr(storage_id, STATUS_ATTR, "orphan")
                self._tell(frozen.number, state=TrialState.FAIL)


class TuneDrivenGridSampler(optuna.samplers.GridSampler):
    """``GridSampler`` for trials that Ray Tune drives, not ``study.optimize``.

    Optuna's ``after_trial`` calls ``study.stop()`` once the grid is used up, which raises
    outside ``study.optimize`` (here: on telling the grid's last trial). Tune already
    stops at the grid's size (``budget.num_samples`` is capped to it), so there is
    nothing to stop.
    """

    def after_trial(self, study, trial, state, values) -> None:
        return None

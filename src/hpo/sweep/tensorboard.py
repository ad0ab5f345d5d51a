"""TensorBoard event files for a sweep, written on the driver as results arrive, for both
engines: per trial, every fold-mean metric and each fold's own value per epoch, and the
hparams view of the whole sweep (each trial's hyperparameters and its best ``metric``).

    tensorboard --logdir RUN_DIR/tensorboard

Written with tensorboardX (which Ray Tune already depends on); viewing needs the
``tensorboard`` package. The writing happens in a thread of its own: a trial waits for
the driver to take each epoch's result (Ray Tune's synchronous reporting), and the ~40
scalars of an epoch cost the driver about 6 ms, a stall per epoch of every trial when
written in the callback itself (benchmarks/throughput.py). A user's own Lightning loggers (``trainer.logger``) write beside
this, per fold, where they are configured to.
"""

from __future__ import annotations

import math
import queue
import threading
from pathlib import Path
from typing import Any

from ray.tune import Callback

from hpo.rundir import TENSORBOARD

TENSORBOARD_DIR = TENSORBOARD
_SKIP = {"epoch", "folds_active", "fold_best_epochs"}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


class TensorBoardWriter(Callback):
    """A Tune callback: one event-file folder per trial under ``RUN_DIR/tensorboard``.

    Args:
        run_dir: the local run directory.
        metric, mode: the sweep's objective, for the hparams view.
        metric_names: the fold-mean metrics the trials report (both engines' names).
    """

    def __init__(self, run_dir: Path, metric: str, mode: str, metric_names) -> None:
        self.root = Path(run_dir) / TENSORBOARD_DIR
        self.metric, self.mode = metric, mode
        self.names = list(metric_names)
        self._best: dict[str, float] = {}
        self._start()

    def _start(self) -> None:
        self._writers: dict[str, Any] = {}  # the writing thread's only
        self._queue: queue.Queue = queue.Queue()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._write, name="hpo-tensorboard", daemon=True)
        self._thread.start()

    def __getstate__(self) -> dict:  # Tune pickles callbacks; the thread and writers stay
        state = dict(self.__dict__)
        for name in ("_writers", "_queue", "_thread", "_failure"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict) -> None:  # a resumed sweep's copy writes anew
        self.__dict__.update(state)
        self._start()

    def _writer(self, trial_id: str):
        from tensorboardX import SummaryWriter

        if trial_id not in self._writers:
            self._writers[trial_id] = SummaryWriter(str(self.root / f"trial_{trial_id}"))
        return self._writers[trial_id]

    def _write(self) -> None:
        """The writing thread: scalars, an ended trial's hparams, and at ``None`` the end.
        Writers are flushed whenever the queue runs empty."""
        dirty: set[str] = set()
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                kind, trial_id, payload = item
                if kind == "scalars":
                    writer = self._writer(trial_id)
                    epoch, scalars = payload
                    for tag, value in scalars:
                        writer.add_scalar(tag, value, epoch)
                    dirty.add(trial_id)
                else:  # "end": the hparams view, then the trial's writer closes
                    writer = self._writers.pop(trial_id, None)
                    dirty.discard(trial_id)
                    if writer is not None:
                        params, best = payload
                        writer.add_hparams(params, {f"best_{self.metric}": best},
                                           name="hparams")  # fmt: skip
                        writer.close()
                if self._queue.empty():
                    for name in dirty:
                        self._writers[name].flush()
                    dirty.clear()
            except Exception as exc:  # e.g. a full disk: raised on the driver's next call
                self._failure = exc
            finally:
                self._queue.task_done()

    def _put(self, item) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        self._queue.put(item)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        epoch = int(result.get("epoch", 0))
        scalars = []
        for name in self.names:
            value = _number(result.get(name))
            if value is not None:
                scalars.append((f"{name}/mean", value))
            for fold, fold_value in enumerate(result.get(f"fold_{name}") or []):
                fold_value = _number(fold_value)
                if fold_value is not None:
                    scalars.append((f"{name}/fold_{fold}", fold_value))
        self._put(("scalars", trial.trial_id, (epoch, scalars)))
        value = _number(result.get(self.metric))
        if value is not None:
            best = self._best.get(trial.trial_id)
            better = best is None or (value < best if self.mode == "min" else value > best)
            self._best[trial.trial_id] = value if better else best

    def _end(self, trial) -> None:
        params = {k: v if isinstance(v, (int, float, str, bool)) else str(v)
                  for k, v in trial.config.items()}  # fmt: skip
        best = self._best.get(trial.trial_id)
        self._put(("end", trial.trial_id, (params, best if best is not None else math.nan)))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._end(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._end(trial)

    def close(self) -> None:
        """Write what is queued, close every writer and stop the thread (idempotent)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
            for writer in self._writers.values():
                writer.close()
            self._writers.clear()

    def on_experiment_end(self, trials, **info):
        self.close()

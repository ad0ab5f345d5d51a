"""Epoch results sent in batches: a trial does not wait for the driver after every epoch.

Ray Tune's function trainables report synchronously: after each ``tune.report`` the
trial's thread waits until the driver has taken the result (scheduler, searcher,
callbacks) and asked for the next one. On small tables an epoch takes about a tenth of a
second and that round trip about 8 ms on 2 cores: most of what a sweep lost between its
trials in benchmarks/throughput.py.

Ray Tune's own answer is result buffering (``TUNE_RESULT_BUFFER_LENGTH``): the driver
calls the trainable's ``train_buffered``, which runs several ``train()`` steps on the
worker and returns their results together. As it is it does not serve: in Ray 2.60 the
driver passes ``(buffer_length, buffer_time_s)`` by position to
``train_buffered(buffer_time_s, max_buffer_length)`` (``TuneController.
_schedule_trial_train``), so every buffer ends after one result; and a buffer that ends
on time alone lets a trial train on past the epoch at which its scheduler stops it.

So hpo's trainable, Ray's ``wrap_function`` class of the trial function subclassed with
:class:`BufferedResults`, defines ``train_buffered`` itself (Tune's arguments unused): it
returns its results at every epoch its scheduler judges (ASHA's and Hyperband's
milestones, the top fidelity), at a checkpoint, at the trial's end or failure, after a
trial's first epoch, and at the latest ``trainer.result_buffer_s`` seconds after the
buffer began. A scheduler that may act at any epoch (median stopping, fold racing, PBT)
gets no buffering. The driver still sees every epoch's result, in order, and decides at
the same epochs; what waits, at most ``result_buffer_s``, is what nothing decides on:
the progress table, trials.jsonl's rows, the study's intermediate values, a wall-clock
budget or a stopper (a trial may then train up to that long past it; those epochs are
discarded, as with Tune's own buffering).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ray.tune.result import DONE, RESULT_DUPLICATE, SHOULD_CHECKPOINT

# Tune calls train_buffered (not train) when this is above 1; the number itself is unused
BUFFER_ENV = "TUNE_RESULT_BUFFER_LENGTH"


class BufferedResults:
    """Mixed into the trial's Tune trainable class (see the module docstring).

    Class attributes (set by :func:`buffered_trainable`):
        judged_epochs: the epochs at which the scheduler may act on a result.
        result_buffer_s: the longest a buffer of results waits on the worker.
    """

    judged_epochs: frozenset[int] = frozenset()
    result_buffer_s: float = 0.0

    def train_buffered(self, *_tune_args: Any) -> list[dict]:
        """Run ``train()`` steps until a result the driver must see now; return them all.

        A checkpoint's result goes alone, at the next call: Tune saves the checkpoint
        before it asks for more, and when a checkpoint ends a batch of several results
        Tune 2.60 asks twice (it acts on the earlier results' CONTINUE while it saves). A
        step that raises after others succeeded returns those first; the next call
        raises its error, so the trial fails as it would have, its earlier epochs kept.
        """
        held, self.hpo_held = getattr(self, "hpo_held", None), None
        if isinstance(held, BaseException):
            raise held
        if held is not None:
            return [held]
        results: list[dict] = []
        deadline = time.monotonic() + self.result_buffer_s
        while True:
            try:
                result = self.train()
            except Exception as exc:
                if not results:
                    raise
                self.hpo_held = exc
                return results
            if result.get(SHOULD_CHECKPOINT) and results:
                self.hpo_held = result
                return results
            results.append(result)
            if self._send_now(result) or time.monotonic() >= deadline:
                return results

    def reset_config(self, new_config: dict) -> bool:
        self.hpo_held = None  # a reused actor: nothing of the last trial's is sent
        return super().reset_config(new_config)

    def _send_now(self, result: dict) -> bool:
        if result.get(DONE) or result.get(SHOULD_CHECKPOINT) or result.get(RESULT_DUPLICATE):
            return True
        epoch = result.get("epoch")
        first = result.get("iterations_since_restore") == 1  # the first after a (re)start
        return epoch is None or first or int(epoch) in self.judged_epochs


def judged_epochs(scheduler) -> frozenset[int] | None:
    """The epochs at which ``scheduler`` may act on a trial's result: none for FIFO, a
    scheduler's own ``judged_epochs()`` (hpo's ASHA and Hyperband), else None (any
    epoch: no buffering)."""
    from ray.tune.schedulers import FIFOScheduler

    if type(scheduler) is FIFOScheduler:
        return frozenset()
    own = getattr(scheduler, "judged_epochs", None)
    return frozenset(int(e) for e in own()) if callable(own) else None


def buffered_trainable(trainable, scheduler, result_buffer_s: float):
    """``trainable`` (a trial function, as ``tune.with_parameters`` / ``with_resources``
    return it) as a Tune trainable class that buffers its results for ``scheduler``; the
    function itself when buffering is off (``result_buffer_s`` 0, or a scheduler that
    may act at any epoch)."""
    epochs = judged_epochs(scheduler)
    if epochs is None or result_buffer_s <= 0:
        return trainable
    from ray.tune.trainable import wrap_function

    base = wrap_function(trainable)
    return type(
        base.__name__,
        (BufferedResults, base),
        {"judged_epochs": epochs, "result_buffer_s": float(result_buffer_s)},
    )


def buffers_results(trainable) -> bool:
    return isinstance(trainable, type) and issubclass(trainable, BufferedResults)


@contextmanager
def result_buffering(enabled: bool) -> Iterator[None]:
    """Tune's switch for calling ``train_buffered``, set for one run (the driver's
    TuneController reads it when it starts) and put back after."""
    if not enabled:
        yield
        return
    before = os.environ.get(BUFFER_ENV)
    os.environ[BUFFER_ENV] = "1000"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(BUFFER_ENV, None)
        else:
            os.environ[BUFFER_ENV] = before

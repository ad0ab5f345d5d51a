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

And a trial does not wait while the driver takes a batch: when a batch ends on a result
the driver only records (a buffer that timed out, a trial's first epoch), the trainable
goes on with the next batch in a thread of its own (:class:`RunAhead`), which the
driver's next ``train_buffered`` call collects. Before, the trial's training thread stood
still for every round trip: the driver's handling of the batch (1 to 2 ms an epoch
result on 2 cores: Tune's result bookkeeping, the searcher, hpo's callbacks), 0.1 to 0.2
s of a 5-s trial (benchmarks/throughput.py). What runs ahead is what the driver would
have asked for next; it never runs past an epoch the scheduler judges, a checkpoint
(until Tune has saved it: see :meth:`BufferedResults._may_run_ahead`), the trial's end
or an error, nor when an epoch takes more than RUN_AHEAD_MAX_EPOCH_S. Any other call
(stop, reset, save, restore) first stops it after its current epoch and discards the
results it made since the driver's last call, as with a stopper above. (A save, and a
scheduler's PAUSE that leads to one, come only after a checkpoint or a judged epoch, where
nothing runs ahead.)
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ray.tune.result import DONE, RESULT_DUPLICATE, SHOULD_CHECKPOINT, TIME_THIS_ITER_S

# Tune calls train_buffered (not train) when this is above 1; the number itself is unused
BUFFER_ENV = "TUNE_RESULT_BUFFER_LENGTH"
# A trial runs ahead only while its epochs take at most this long: a round trip (~10-30
# ms) is nothing against a longer epoch, and a stop while it runs ahead waits for the
# epoch in progress (that much compute is then lost).
RUN_AHEAD_MAX_EPOCH_S = 1.0
# The longest a stop, reset, save or restore waits for that epoch before it goes on (a
# reset then fails, as Tune's own does when a trial's thread will not stop).
DISCARD_WAIT_S = 30.0


class BufferedResults:
    """Mixed into the trial's Tune trainable class (see the module docstring).

    Class attributes (set by :func:`buffered_trainable`):
        judged_epochs: the epochs at which the scheduler may act on a result.
        result_buffer_s: the longest a buffer of results waits on the worker.
    """

    judged_epochs: frozenset[int] = frozenset()
    result_buffer_s: float = 0.0
    hpo_held: Any = None  # a checkpoint's result or an error, for the next call
    hpo_ahead: RunAhead | None = None  # the next batch, training ahead

    def train_buffered(self, *_tune_args: Any) -> list[dict]:
        """Run ``train()`` steps until a result the driver must see now; return them all.

        A checkpoint's result goes alone, at the next call: Tune saves the checkpoint
        before it asks for more, and when a checkpoint ends a batch of several results
        Tune 2.60 asks twice (it acts on the earlier results' CONTINUE while it saves). A
        step that raises after others succeeded returns those first; the next call
        raises its error, so the trial fails as it would have, its earlier epochs kept.

        The batch may have been trained ahead, in a thread started when the last call
        returned (see the module docstring): this call then waits for it to end as it
        would have ended here, and starts the next one where that is safe.
        """
        ahead, self.hpo_ahead = self.hpo_ahead, None
        if ahead is not None:
            results = ahead.collect()
        else:
            results = self._collect(time.monotonic() + self.result_buffer_s)
        if self._may_run_ahead(results[-1]):
            self.hpo_ahead = RunAhead(self)
        return results

    def _collect(self, deadline: float, interrupt: threading.Event | None = None) -> list:
        """One batch: ``train()`` steps until a result to send now, ``deadline``
        (``time.monotonic``) or ``interrupt``."""
        held, self.hpo_held = self.hpo_held, None
        if isinstance(held, BaseException):
            raise held
        if held is not None:
            return [held]
        results: list[dict] = []
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
            if interrupt is not None and interrupt.is_set():
                return results

    def _may_run_ahead(self, last: dict) -> bool:
        """Whether the driver's next call after a batch ending in ``last`` is certain to
        be another ``train_buffered`` unless it stops the trial: the driver only records
        ``last``. Not after a checkpoint: until Tune has saved it (its ``save`` call) and
        asks for more, the trial must not train on, or a worker that dies in the next
        epoch would be retried from the checkpoint before, and repeat an epoch the driver
        already recorded (tests/sweep/test_faults.py)."""
        if self.hpo_held is not None:
            return False  # a held checkpoint or error goes at the next call
        if _driver_may_act(last, self.judged_epochs):
            return False
        return float(last.get(TIME_THIS_ITER_S) or 0.0) <= RUN_AHEAD_MAX_EPOCH_S

    def _discard_ahead(self) -> bool:
        """Stop a batch trained ahead after its current epoch and drop it (what the
        driver did not ask for), before any call but ``train_buffered``. False if that
        epoch has not ended within DISCARD_WAIT_S."""
        ahead = self.hpo_ahead
        if ahead is None:
            return True
        ahead.interrupt.set()
        ahead.thread.join(DISCARD_WAIT_S)
        if ahead.thread.is_alive():
            return False
        self.hpo_ahead = self.hpo_held = None
        return True

    # Tune's other calls to the trial's actor (Trainable's public methods)
    def stop(self, *args, **kwargs):
        self._discard_ahead()
        return super().stop(*args, **kwargs)

    def reset(self, *args, **kwargs):
        if not self._discard_ahead():
            return False  # Tune then runs the next trial in a new actor
        return super().reset(*args, **kwargs)

    def save(self, *args, **kwargs):
        self._discard_ahead()
        return super().save(*args, **kwargs)

    def restore(self, *args, **kwargs):
        if not self._discard_ahead():
            raise RuntimeError(
                f"the trial's epoch trained ahead did not end within {DISCARD_WAIT_S:.0f} s"
            )
        return super().restore(*args, **kwargs)

    def reset_config(self, new_config: dict) -> bool:
        self.hpo_held = None  # a reused actor: nothing of the last trial's is sent
        return super().reset_config(new_config)

    def _send_now(self, result: dict) -> bool:
        first = result.get("iterations_since_restore") == 1  # the first after a (re)start
        return first or _driver_may_act(result, self.judged_epochs)


def _driver_may_act(result: dict, judged: frozenset[int]) -> bool:
    """Whether the driver may do more than record ``result``: the trial's end, a
    checkpoint to save, or an epoch its scheduler judges (any, for a result with none)."""
    if result.get(DONE) or result.get(SHOULD_CHECKPOINT) or result.get(RESULT_DUPLICATE):
        return True
    epoch = result.get("epoch")
    return epoch is None or int(epoch) in judged


class RunAhead:
    """The next batch of a :class:`BufferedResults` trainable, trained in a thread while
    the driver takes the last one; its deadline counts from now, when it began."""

    def __init__(self, trainable: BufferedResults):
        self.interrupt = threading.Event()
        self.results: list[dict] = []
        self.error: BaseException | None = None
        deadline = time.monotonic() + trainable.result_buffer_s

        def run() -> None:
            try:
                self.results = trainable._collect(deadline, self.interrupt)
            except BaseException as exc:  # raised to the driver by collect()
                self.error = exc

        self.thread = threading.Thread(target=run, name="hpo-run-ahead", daemon=True)
        self.thread.start()

    def collect(self) -> list[dict]:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.results


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

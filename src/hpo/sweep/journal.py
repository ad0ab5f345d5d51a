"""The study's journal file with its writes in batches: one locked, fsynced append for
many of the study's changes instead of one each.

Optuna's ``JournalFileBackend`` takes a file lock, appends and fsyncs on every change
of the study. The searcher makes one change per epoch result (the trial's intermediate
value), and the sweep's driver does it while the trial's worker waits for the driver's
answer (hpo.sweep.buffering): about 1.5 ms of fsync and 2 ms in all per epoch result on
2 cores, the largest part of what the driver spent on an epoch's result.

:class:`BatchedJournal` is a journal backend (Optuna's public ``BaseJournalBackend``)
over a ``JournalFileBackend``: the changes it is given wait in memory until
:meth:`BatchedJournal.flush` appends them together. The ``JournalStorage`` above it
sees them at once (``read_logs`` returns the file's logs, then the waiting ones), so
the study in this process is always current; the file is current after every flush.

It assumes it is the journal's only writer while changes wait (the sweep's driver,
which holds the run directory: hpo.sweep.lock); readers (``optuna-dashboard``,
``optuna.load_study``) see the file as of the last flush. The searcher flushes after
every ask and every tell, at each of Tune's experiment snapshots, at the end of the
run, and at the latest ``flush_s`` seconds after a waiting change came in, so a driver
killed mid-sweep loses at most that much of its running trials' epoch values and
nothing that Tune's snapshot relies on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from optuna.storages.journal import BaseJournalBackend, JournalFileBackend

FLUSH_S = 1.0  # the longest a change waits in memory before it is written


class BatchedJournal(BaseJournalBackend):
    """A journal file whose appends are written together, at :meth:`flush`.

    Args:
        path: the journal file (created if missing).
        flush_s: :meth:`flush_due` is true once a change has waited this long.
    """

    def __init__(self, path: str | Path, flush_s: float = FLUSH_S) -> None:
        self.file = JournalFileBackend(str(path))
        self.flush_s = flush_s
        self._pending: list[dict[str, Any]] = []
        self._in_file = 0  # logs known to be in the file
        self._waiting_since: float | None = None

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        if not self._pending or log_number_from < self._in_file:
            # the file from there on (another writer's logs too, while nothing waits)
            start = min(log_number_from, self._in_file)
            count = 0
            for log in self.file.read_logs(start):
                if start + count >= log_number_from:
                    yield log
                count += 1
            self._in_file = start + count
        for number, log in enumerate(self._pending, start=self._in_file):
            if number >= log_number_from:
                yield log

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        if not self._pending:
            self._waiting_since = time.monotonic()
        self._pending.extend(logs)

    @property
    def waiting(self) -> int:
        """How many changes wait to be written."""
        return len(self._pending)

    def flush_due(self) -> bool:
        """Whether a change has waited ``flush_s`` or longer."""
        return bool(self._pending) and time.monotonic() - self._waiting_since >= self.flush_s

    def flush(self) -> None:
        """Append the waiting changes to the file (one lock, one fsync)."""
        if not self._pending:
            return
        written, start = self._pending, self._in_file
        self.file.append_logs(written)
        self._pending, self._waiting_since = [], None
        # read them back once: the file backend learns where they end, so the next read
        # starts there instead of at the file's beginning
        self._in_file = start + sum(1 for _ in self.file.read_logs(start))

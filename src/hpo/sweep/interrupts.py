"""Ctrl-C after the sweep: Ray Tune's SIGINT handler must not outlive ``tuner.fit()``.

Tune installs its own SIGINT (and SIGUSR1) handler for the fit and restores the previous
one only when the first signal arrives. After a normal finish its handler stays, and a
Ctrl-C during the export only sets a flag that nobody reads any more: the interrupt is
swallowed and the run exits 0. ``tune_handlers_undone`` puts the previous handlers back.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGUSR1)


@contextlib.contextmanager
def tune_handlers_undone() -> Iterator[None]:
    """Run the block (``tuner.fit()``), then restore the signal handlers it replaced."""
    before = {number: signal.getsignal(number) for number in SIGNALS}
    try:
        yield
    finally:
        # signal.signal works in the main thread only (Tune installs nothing elsewhere)
        if threading.current_thread() is threading.main_thread():
            for number, handler in before.items():
                if handler is not None:
                    signal.signal(number, handler)

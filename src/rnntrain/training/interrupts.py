"""Ctrl-C and SIGTERM during training: at the end of a short round, or at once.

A checkpoint must hold a finished round. When rounds are long, a signal interrupts at once
and the trainer saves the copy of the last finished round it keeps in memory. When rounds
are short, that copy, taken after every round, would be a noticeable share of the run (a
generation of a small genetic algorithm takes about 10 ms, the copy about 0.3 ms), so the
signal is held until the round in progress ends (under DEFER_SECONDS) and the trainer saves
that round itself; a second signal interrupts at once.

Delivering a held signal calls the handler that was installed before training began
(Python's Ctrl-C handler raising KeyboardInterrupt, the CLI's SIGTERM handler, a notebook's)
or, for SIGTERM left at its default action, raises :class:`DefaultAction`, which the trainer
saves for and then takes (the process ends by SIGTERM): training ends the way it would have
ended without this module, with its last round saved.

Handlers can only be installed from the main thread; elsewhere, and under torch.distributed
(every process must stop after the same round, and signals reach them at different
moments), every signal interrupts at once and the trainer keeps its copy after each round.
"""
from __future__ import annotations

import signal
import threading
from typing import Dict, Optional

DEFER_SECONDS = 1.0  # a round shorter than this runs to its end before a signal is delivered
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    """Context manager around the training loop; ``defer`` says whether a signal arriving
    now waits for :meth:`deliver_pending` (set by the trainer before each round)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.previous: Dict[int, object] = {}
        self.pending: Optional[int] = None
        self.defer = False

    def __enter__(self) -> "Interrupts":
        if self.enabled:
            for sig in SIGNALS:
                self.previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous.clear()

    def can_defer(self, round_seconds: float) -> bool:
        """Whether the next round may hold a signal, judged by the last round's length."""
        return bool(self.previous) and round_seconds < DEFER_SECONDS

    def _on_signal(self, signum: int, frame) -> None:
        if self.defer and self.pending is None:
            self.pending = signum  # the round ends, is saved, then the signal is delivered
            return
        self._deliver(signum, frame)  # long rounds, or a second signal: now

    def deliver_pending(self) -> None:
        """At the end of a saved round: deliver a held signal (usually raising KeyboardInterrupt)."""
        if self.pending is not None:
            signum, self.pending = self.pending, None
            self._deliver(signum, None)

    def _deliver(self, signum: int, frame) -> None:
        previous = self.previous.get(signum, signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)
        elif previous in (signal.SIG_DFL, None):  # Ctrl-C raises; SIGTERM ends the process, once saved
            raise KeyboardInterrupt if signum == signal.SIGINT else DefaultAction(signum)
        # SIG_IGN: ignored, as before


class DefaultAction(KeyboardInterrupt):
    """A signal whose default action is to end the process (SIGTERM with no handler of the
    caller's): raised so the trainer saves as for Ctrl-C, then :meth:`take` ends the process
    by that signal, as it would have ended."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    def take(self) -> None:
        signal.signal(self.signum, signal.SIG_DFL)
        signal.raise_signal(self.signum)

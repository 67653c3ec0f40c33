"""Ctrl-C as a request to stop: opt-in for library users, installed by the CLI.

The loop never touches signal handlers: a running :class:`~featinv.optim.inversion.Inversion`
only registers itself here while it steps. :func:`stop_on_signals` (a context manager) makes the
first Ctrl-C ask every running inversion to finish its step and stop cleanly ('interrupted', with
a checkpoint in a run folder) and a second one raise ``KeyboardInterrupt`` at once; a Ctrl-C with
no inversion running is a ``KeyboardInterrupt`` as usual. SIGTERM is taken only where nobody
handles it (its default action): a host that set its own -- a process-pool worker, Ray, a service
-- keeps it, since it uses SIGTERM to end the process, not to ask for a result.

>>> import signal
>>> before = signal.getsignal(signal.SIGINT)
>>> with stop_on_signals():
...     signal.getsignal(signal.SIGINT) is not before
True
>>> signal.getsignal(signal.SIGINT) is before
True
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from ..status import Status


class Stoppable(Protocol):
    stop_reason: Status | None

    def request_stop(self, status: Status = Status.INTERRUPTED) -> None: ...


_running: list[Stoppable] = []  # the inversions stepping now, in this process
_requested = [False]  # a Ctrl-C asked them to stop (within stop_on_signals): a sweep starts no more


def stop_requested() -> bool:
    """Whether a Ctrl-C under :func:`stop_on_signals` asked this process's inversions to stop
    (a sweep then starts no further batch)."""
    return _requested[0]


@contextmanager
def running(run: Stoppable) -> Iterator[None]:
    """Register ``run`` as stepping (what a signal handler stops) for the duration."""
    _running.append(run)
    try:
        yield
    finally:
        _running.remove(run)


def _handler(signum: int, frame: Any) -> None:
    if not _running or any(run.stop_reason == Status.INTERRUPTED for run in _running):
        raise KeyboardInterrupt  # nothing to stop cleanly, or the second Ctrl-C
    _requested[0] = True
    for run in list(_running):
        run.request_stop(Status.INTERRUPTED)


def install() -> dict[int, Any]:
    """Install the handlers for good (a process of featinv's own: the CLI, a pool worker); returns
    the handlers they replaced. Only the main thread can set handlers: elsewhere nothing is done."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    signals = [signal.SIGINT] + [signal.SIGTERM] * (signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
    return {sig: signal.signal(sig, _handler) for sig in signals}


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, Ctrl-C (and an unhandled SIGTERM) stops running inversions cleanly; the
    previous handlers come back after it, except where the block set one of its own (the CLI
    ignores Ctrl-C while it exits)."""
    previous = install()
    _requested[0] = False
    try:
        yield
    finally:
        _requested[0] = False
        for sig, old in previous.items():
            if signal.getsignal(sig) is _handler:
                signal.signal(sig, old)

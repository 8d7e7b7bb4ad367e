"""Termination signals end a run the way Ctrl-C does: with the image so far and a checkpoint.

A closed terminal (SIGHUP), ``kill`` and a job scheduler's time limit (SIGTERM) would
otherwise end the process at once and lose everything after the last periodic
checkpoint. Each is turned into ``KeyboardInterrupt``, which every run already answers by
saving; while that save runs, further signals wait (``shielded``), so that a second one
cannot cut it short.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

#: The signals that ask a process to end (SIGINT is Ctrl-C, already a KeyboardInterrupt).
ENDING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Ended(KeyboardInterrupt):
    """A termination signal, raised where the process was, as Ctrl-C is."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def signum_of(stop: KeyboardInterrupt) -> int:
    """The signal that ended a run: ``Ended`` says which; a plain KeyboardInterrupt is
    Ctrl-C. The exit status of the command is 128 plus this, as a shell would report."""
    return getattr(stop, "signum", signal.SIGINT)


#: Signals that arrived while the work so far was being saved (None: not saving).
_held: list[int] | None = None


def _raise(signum: int, frame: object) -> None:
    if _held is not None:
        _held.append(signum)
        return
    raise Ended(signum)


@contextlib.contextmanager
def _handled(signums: tuple[int, ...]) -> Iterator[None]:
    """``_raise`` handles ``signums`` in the block (only the main thread may set handlers,
    and only it gets signals; a signal that nohup set to be ignored stays ignored)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in signums}
    for signum, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(signum, _raise)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def ending_as_interrupt() -> contextlib.AbstractContextManager[None]:
    """While the block runs, SIGTERM and SIGHUP raise ``Ended``; the previous handlers come
    back afterwards (the CLI uses this; a library should not take over a host program's
    signals)."""
    return _handled((signal.SIGTERM, signal.SIGHUP))


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Hold back ending signals, Ctrl-C included, while the work so far is saved; the first
    of them is raised once the block is done. (A handler that defers, not a signal mask:
    a mask holds for one thread, and the signal would reach another.)"""
    global _held
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _held = []
    try:
        with _handled(ENDING):
            yield
    finally:
        held, _held = _held, None
    if held:
        raise Ended(held[0])

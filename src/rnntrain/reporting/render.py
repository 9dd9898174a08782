"""A worker process that draws a run's plots while the run goes on.

Why: a small run spends a tenth of its time in matplotlib, about 0.6 s importing it and
0.2-0.4 s per figure here, while its training loop uses one core of two. The trainer starts
the worker when a process's first run begins (:func:`rendering`); the worker imports
matplotlib on the idle core while the run trains, and draws the figures the run asks for
at its end while the run scores itself. Later runs in the same process (a notebook, an
Optuna study, a test session) reuse the worker. Nothing else about the plots changes: the
worker calls the same functions of :mod:`.plots` with the same arguments.

The protocol is pickles over the worker's stdin and stdout: jobs ``(the run's working
directory, name, args, kwargs)``, drawn as they come (two at once), and at :data:`SYNC` one
reply per job since the last, in order: ``(None, None)`` or ``(exception, traceback
text)``. The worker runs in a session of its own and ignores SIGINT (an interrupt is the
run's to handle), and ends when its stdin closes: when the process that started it exits,
however it exits, the worker ends after at most the figure it is drawing. If the worker
cannot start or dies, the run draws the remaining figures itself: a figure is never lost
to the worker.
"""
from __future__ import annotations

import atexit
import os
import pickle
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

Job = Tuple[str, tuple, Dict[str, Any]]


class Renderer:
    """The run's side of the worker: :meth:`submit` sends a figure, :meth:`wait` returns
    once every figure sent is on disk (raising the first figure's error, as drawing it in
    the run would have)."""

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parents[2])  # the folder holding rnntrain/
        env = dict(os.environ, MPLBACKEND="Agg",
                   PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
        self.pending: List[Job] = []
        self.pid = os.getpid()
        try:  # a session of its own: a Ctrl-C at the terminal is the run's to handle
            self.proc: Optional[subprocess.Popen] = subprocess.Popen(
                [sys.executable, "-c", "from rnntrain.reporting.render import serve; serve()"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, start_new_session=True)
        except OSError:  # no process to spare: draw in the run
            self.proc = None

    def submit(self, name: str, args: tuple, kwargs: Dict[str, Any]) -> None:
        job = (name, args, kwargs)
        message = (os.getcwd(), *job)  # relative paths are the run's, wherever the worker started
        self.pending.append(job)
        if self.proc is not None:
            try:
                pickle.dump(message, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                self.proc.stdin.flush()
            except (OSError, ValueError):  # the worker is gone: wait() draws the rest here
                self._stop()

    def wait(self) -> None:
        """Every submitted figure drawn (by the worker, or here if it died); then the first
        figure's error, if any, raised (every reply is read first: none is left for the
        next run to mistake for its own)."""
        jobs, self.pending = self.pending, []
        if jobs and self.proc is not None:
            try:
                pickle.dump(SYNC, self.proc.stdin)
                self.proc.stdin.flush()
            except (OSError, ValueError):
                self._stop()
        failed: Optional[Tuple[BaseException, str]] = None
        for i, (name, args, kwargs) in enumerate(jobs):
            reply = self._reply()
            if reply is None:  # no worker (any more): the remaining figures are drawn here
                for later, later_args, later_kwargs in jobs[i:]:
                    _function(later)(*later_args, **later_kwargs)
                break
            if reply[0] is not None and failed is None:
                failed = reply
        if failed is not None:
            raise failed[0] from RuntimeError(f"in the plot worker:\n{failed[1]}")

    def _reply(self) -> Optional[Tuple[Optional[BaseException], Optional[str]]]:
        if self.proc is None:
            return None
        try:
            return pickle.load(self.proc.stdout)
        except (EOFError, OSError, pickle.UnpicklingError):
            self._stop()
            return None

    def _stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _function(name: str) -> Callable[..., Any]:
    """The drawing function of plots.py called ``name`` (undecorated: it draws here)."""
    from . import plots
    return getattr(plots, name).draw


# Figures a worker draws at once, each in a child forked from it (matplotlib already
# imported: a fork costs milliseconds). The run is idle while it waits for its figures at its
# end, so the figures take both cores of two.
DRAWERS = 2
SYNC = "sync"  # the run's message for "reply to everything sent so far"


def _draw(message: tuple) -> Tuple[Optional[BaseException], Optional[str]]:
    """One job drawn here: (None, None), or the error (picklable) and its traceback."""
    cwd, name, args, kwargs = message
    try:
        os.chdir(cwd)
        _function(name)(*args, **kwargs)
        return None, None
    except Exception as e:  # sent back to the run, which raises it where the figure was asked for
        import traceback
        trace = traceback.format_exc()
        try:
            pickle.dumps(e)
            return e, trace
        except Exception:
            return RuntimeError(f"{type(e).__name__}: {e}"), trace


class _Drawing:
    """A job being drawn by a forked child, which writes its reply into a pipe and exits."""

    def __init__(self, message: tuple) -> None:
        self.message = message
        read, write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: draw, reply, and end without the worker's cleanup
            try:
                os.close(read)
                data = memoryview(pickle.dumps(_draw(message), protocol=pickle.HIGHEST_PROTOCOL))
                while data:
                    data = data[os.write(write, data):]
            finally:
                os._exit(0)
        os.close(write)
        self.read = read

    def reply(self) -> Tuple[Optional[BaseException], Optional[str]]:
        chunks = []
        while True:
            chunk = os.read(self.read, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(self.read)
        os.waitpid(self.pid, 0)
        try:
            return pickle.loads(b"".join(chunks))
        except Exception:  # the child died before replying: draw the figure here instead
            return _draw(self.message)


def serve() -> None:
    """The worker's loop: import matplotlib, then draw the jobs from stdin, up to
    :data:`DRAWERS` at once, replying in order at each :data:`SYNC`, until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    jobs, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # anything printed goes to the run's stderr, not into the replies
    from . import plots
    plots.warm_up()
    order: List[Any] = []  # per job since the last sync: its reply, or its _Drawing
    while True:
        try:
            message = pickle.load(jobs)
        except EOFError:
            return
        if message == SYNC:
            for entry in order:
                reply = entry.reply() if isinstance(entry, _Drawing) else entry
                pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
            replies.flush()
            order = []
        elif not hasattr(os, "fork"):
            order.append(_draw(message))
        else:
            running = [k for k, e in enumerate(order) if isinstance(e, _Drawing)]
            if len(running) >= DRAWERS:
                order[running[0]] = order[running[0]].reply()
            order.append(_Drawing(message))


_local = threading.local()  # .renderer: the renderer of this thread's run in progress
_lock = threading.Lock()  # guards the two below
_worker: Optional[Renderer] = None  # this process's worker, kept from run to run
_worker_busy = False  # a run (in some thread) is using it


def active() -> Optional[Renderer]:
    """The renderer this thread's figures go to, or None (they are drawn where asked for)."""
    return getattr(_local, "renderer", None)


def drawn() -> None:
    """Returns once every figure asked for so far is on disk (a page that embeds them waits)."""
    renderer = active()
    if renderer is not None:
        renderer.wait()


def _claim() -> Optional[Renderer]:
    """This process's worker, started at its first run (later runs in the same process, in
    a notebook, a study or a test session, reuse it and its imported matplotlib); None while
    another thread's run has it (a worker serves one run at a time: its replies come in order)."""
    global _worker, _worker_busy
    with _lock:
        if _worker_busy:
            return None
        if _worker is None or _worker.proc is None or _worker.pid != os.getpid():
            _worker = Renderer()  # (a forked child never writes into its parent's pipes)
            atexit.register(_worker._stop)
        _worker_busy = True
        return _worker


def _release() -> None:
    global _worker_busy
    with _lock:
        _worker_busy = False


def drawing() -> bool:
    """False within ``rendering(figures=False)``: the run's figures are not drawn at all."""
    return not getattr(_local, "no_figures", False)


@contextmanager
def rendering(enabled: bool = True, *, figures: bool = True) -> Iterator[Optional[Renderer]]:
    """Within: the run's figures (:func:`.plots.run_plot`) are drawn by the worker; on exit,
    every figure asked for is on disk (or its error raised). Nested uses share the outer
    run's. ``RNNTRAIN_PLOT_WORKER=0`` draws in the run instead, as does a run in one thread
    while another thread's run has the worker. ``figures=False`` (``train.figures``): no
    figure is drawn, and no worker started."""
    if not figures:
        before = getattr(_local, "no_figures", False)
        _local.no_figures = True
        try:
            yield None
        finally:
            _local.no_figures = before
        return
    off = os.environ.get("RNNTRAIN_PLOT_WORKER", "1") in ("0", "off", "false", "no")
    renderer = None if not enabled or off or active() is not None else _claim()
    if renderer is None:
        yield active()
        return
    _local.renderer = renderer
    try:
        yield renderer
    except BaseException:
        if renderer.pending:  # the run failed: its figures do not matter, and their replies
            renderer.pending = []  # must not be read as a later run's
            renderer._stop()
        raise
    else:
        renderer.wait()
    finally:
        _local.renderer = None
        _release()
